package storagetest

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// sample is one float sample.
type sample struct {
	T int64
	F float64
}

// series is a label set with its samples, in the order they are written or
// were returned.
type series struct {
	lset    labels.Labels
	samples []sample
}

// txn is one AppenderV2 transaction, reduced to what the cases need.
type txn struct{ app promstorage.AppenderV2 }

// begin starts a transaction on ts.
func begin(ctx context.Context, ts storage.TenantStore) txn { return txn{ts.AppenderV2(ctx)} }

// add appends one float sample. ref is 0 or a reference an earlier add
// returned for the same label set.
func (x txn) add(ref promstorage.SeriesRef, l labels.Labels, t int64, f float64) (promstorage.SeriesRef, error) {
	return x.app.Append(ref, l, 0, t, f, nil, nil, promstorage.AOptions{})
}
func (x txn) Commit() error   { return x.app.Commit() }
func (x txn) Rollback() error { return x.app.Rollback() }

// write appends ss in one transaction, series after series (as a remote
// write request arrives), and commits it.
func write(t testing.TB, ts storage.TenantStore, ss ...series) {
	t.Helper()
	tx := begin(t.Context(), ts)
	for _, s := range ss {
		for _, smp := range s.samples {
			if _, err := tx.add(0, s.lset, smp.T, smp.F); err != nil {
				_ = tx.Rollback()
				require.NoError(t, err, "Append(%s, %d, %s)", s.lset, smp.T, fmtValue(smp.F))
			}
		}
	}
	require.NoError(t, tx.Commit(), "Commit")
}

// writeScrapes appends ss as a scraper would: one transaction per
// timestamp holding every series' sample at that timestamp, reusing the
// series references the appender returned. All series must share their
// timestamps.
func writeScrapes(t testing.TB, ts storage.TenantStore, ss ...series) {
	t.Helper()
	if len(ss) == 0 {
		return
	}
	refs := make([]promstorage.SeriesRef, len(ss))
	for i := range ss[0].samples {
		tx := begin(t.Context(), ts)
		for j, s := range ss {
			smp := s.samples[i]
			ref, err := tx.add(refs[j], s.lset, smp.T, smp.F)
			if err != nil {
				_ = tx.Rollback()
				require.NoError(t, err, "Append(ref=%d, %s, %d, %s)", refs[j], s.lset, smp.T, fmtValue(smp.F))
			}
			refs[j] = ref
		}
		require.NoError(t, tx.Commit(), "Commit of scrape %d", i)
	}
}

// ls builds a label set from name, value pairs.
func ls(nv ...string) labels.Labels { return labels.FromStrings(nv...) }

// steps returns n samples from start every step milliseconds, valued by
// value(i).
func steps(start, step int64, n int, value func(i int) float64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{T: start + int64(i)*step, F: value(i)}
	}
	return out
}

// constant returns a value function always returning v.
func constant(v float64) func(int) float64 { return func(int) float64 { return v } }

// linear returns a value function returning base + i*inc.
func linear(base, inc float64) func(int) float64 {
	return func(i int) float64 { return base + float64(i)*inc }
}
