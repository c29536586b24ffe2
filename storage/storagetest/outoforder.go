package storagetest

import (
	"math"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/value"
)

// baseTime is a realistic timestamp (2023-11-14) for cases that write
// before their first sample; step is a 15 s scrape interval.
const (
	baseTime int64 = 1_700_000_000_000
	step     int64 = 15_000
	hour     int64 = 3_600_000
)

// testOutOfOrderAndDuplicates: a re-sent batch creates no duplicates; a
// sample older than the newest (even older than every sample, after many
// newer ones) is stored and returned in order; at an existing timestamp the
// documented rule is last write wins: the value committed later (or
// appended later in the same transaction) is returned.
func testOutOfOrderAndDuplicates(t *testing.T, b Backend) {
	all := re("__name__", ".+")

	t.Run("re-sent batch", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		batch := []series{
			{ls("__name__", "resent", "i", "1"), steps(baseTime, step, 200, linear(0, 1))},
			{ls("__name__", "resent", "i", "2"), steps(baseTime, step, 200, linear(0.25, 0.5))},
			{ls("__name__", "resent", "i", "3"), steps(baseTime, step, 200, constant(math.Inf(1)))},
		}
		write(t, ts, batch...)
		write(t, ts, batch...)
		requireSelect(t, ts, merge(batch), 0, math.MaxInt64, all)

		// A retry overlapping the old batch by half and extending it.
		var overlap []series
		for _, s := range batch {
			overlap = append(overlap, series{s.lset, append(slices.Clone(s.samples[100:]), steps(baseTime+200*step, step, 100, constant(7))...)})
		}
		write(t, ts, overlap...)
		write(t, ts, overlap...)
		requireSelect(t, ts, merge(batch, overlap), 0, math.MaxInt64, all)
	})

	t.Run("duplicate within one transaction", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		s := series{ls("__name__", "dup"), steps(baseTime, step, 10, linear(1, 1))}
		twice := series{s.lset, append(slices.Clone(s.samples), s.samples...)}
		write(t, ts, twice)
		requireSelect(t, ts, []series{s}, 0, math.MaxInt64, all)
	})

	t.Run("out of order within one transaction", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		s := series{ls("__name__", "shuffled"), nil}
		for _, i := range []int64{5, 3, 9, 1, 7, 0, 8, 2, 6, 4} {
			s.samples = append(s.samples, sample{baseTime + i*step, float64(i)})
		}
		write(t, ts, s)
		requireSelect(t, ts, merge([]series{s}), 0, math.MaxInt64, all)
	})

	t.Run("older than the newest sample", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		lset := ls("__name__", "late_arrivals", "job", "api")
		other := ls("__name__", "late_arrivals", "job", "web")
		// 1,000 samples committed 100 at a time (several chunks in any
		// chunk layout), every tenth one held back.
		var batches [][]series
		var held []sample
		for c := range 10 {
			var s []sample
			for i := c * 100; i < (c+1)*100; i++ {
				smp := sample{baseTime + int64(i)*step, float64(i)}
				if i%10 == 3 {
					held = append(held, smp)
					continue
				}
				s = append(s, smp)
			}
			batch := []series{{lset, s}, {other, steps(baseTime+int64(c*100)*step, step, 100, linear(float64(c*100), 1))}}
			write(t, ts, batch...)
			batches = append(batches, batch)
		}
		requireSelect(t, ts, merge(batches...), 0, math.MaxInt64, all)

		// The held-back samples, newest first, in one transaction.
		slices.Reverse(held)
		late := []series{{lset, held}}
		write(t, ts, late...)
		batches = append(batches, late)
		requireSelect(t, ts, merge(batches...), 0, math.MaxInt64, all)

		// Older than every sample of the series, one at a time.
		for _, old := range []sample{{baseTime - step, -1}, {baseTime - hour, -2}, {baseTime - 24*hour, -3}, {baseTime - 30*24*hour, -4}} {
			older := []series{{lset, []sample{old}}}
			write(t, ts, older...)
			batches = append(batches, older)
		}
		want := merge(batches...)
		requireSelect(t, ts, want, 0, math.MaxInt64, all)
		requireSelect(t, ts, filter(want, baseTime-2*hour, baseTime+3*step, all), baseTime-2*hour, baseTime+3*step, all)
		requireSelect(t, ts, filter(want, baseTime+250*step, baseTime+450*step, all), baseTime+250*step, baseTime+450*step, all)
	})

	t.Run("last write wins", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		lset := ls("__name__", "overwritten")
		at := baseTime + 1000*step
		var batches [][]series
		commit := func(smp ...sample) {
			batch := []series{{lset, smp}}
			write(t, ts, batch...)
			batches = append(batches, batch)
		}
		// Across transactions.
		commit(sample{at, 1})
		commit(sample{at, 2})
		requireSameSeries(t, []series{{lset, []sample{{at, 2}}}}, selectSeries(t, ts, 0, math.MaxInt64, all),
			"value 1 then value 2 committed at one timestamp: last write wins, want 2")
		// Within one transaction.
		commit(sample{at, 3}, sample{at, 4})
		requireSameSeries(t, []series{{lset, []sample{{at, 4}}}}, selectSeries(t, ts, 0, math.MaxInt64, all),
			"values 3 then 4 appended at one timestamp in one transaction: last write wins, want 4")

		// Far behind the newest sample, after many newer ones.
		commit(steps(baseTime, step, 999, linear(0, 1))...)
		commit(steps(at+step, step, 500, linear(1001, 1))...)
		commit(sample{baseTime, 100}, sample{baseTime + 500*step, 200})
		commit(sample{baseTime + 700*step, math.Float64frombits(value.StaleNaN)})
		commit(sample{at, 5})
		commit(sample{at + 499*step, -1})
		want := merge(batches...)
		requireSameSeries(t, want, selectSeries(t, ts, 0, math.MaxInt64, all),
			"overwrites of old and recent samples: last write wins")

		// Re-sending the latest values changes nothing.
		commit(sample{baseTime, 100}, sample{at, 5})
		requireSameSeries(t, want, selectSeries(t, ts, 0, math.MaxInt64, all), "re-sent latest values")
	})
}
