package storagetest

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// testRollback: a rolled-back transaction stores nothing, neither samples
// nor series (label names and values do not show its series), and the
// store keeps working afterwards.
func testRollback(t *testing.T, b Backend) {
	all := re("__name__", ".+")
	t.Run("nothing stored", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		tx := begin(t.Context(), ts)
		for _, s := range []series{
			{ls("__name__", "rolled_back", "job", "a"), steps(1000, 1000, 50, linear(0, 1))},
			{ls("__name__", "rolled_back", "job", "b"), steps(1000, 1000, 50, linear(0, 1))},
		} {
			for _, smp := range s.samples {
				_, err := tx.add(0, s.lset, smp.T, smp.F)
				require.NoError(t, err)
			}
		}
		require.NoError(t, tx.Rollback())
		requireSelect(t, ts, nil, 0, math.MaxInt64, all)
		require.Empty(t, labelNames(t, ts, 0, math.MaxInt64, nil), "LabelNames after Rollback")
		require.Empty(t, labelValues(t, ts, 0, math.MaxInt64, "__name__", nil), "LabelValues after Rollback")
		require.Empty(t, listSeries(t, ts, 0, math.MaxInt64, 0, all), "series after Rollback")
	})

	t.Run("after committed data", func(t *testing.T) {
		ts := b.Open(t).ForTenant(tenantA)
		committed := series{ls("__name__", "kept", "job", "a"), steps(1000, 1000, 10, linear(0, 1))}
		write(t, ts, committed)

		tx := begin(t.Context(), ts)
		for _, s := range []series{
			{committed.lset, steps(11000, 1000, 10, constant(99))},                     // newer samples of a kept series
			{committed.lset, []sample{{500, 99}, {5000, 99}}},                          // older and overwriting
			{ls("__name__", "kept", "job", "new"), steps(1000, 1000, 5, constant(99))}, // new series, known name
			{ls("__name__", "phantom", "phantom_label", "x"), steps(1000, 1000, 5, constant(99))},
		} {
			for _, smp := range s.samples {
				_, err := tx.add(0, s.lset, smp.T, smp.F)
				require.NoError(t, err)
			}
		}
		require.NoError(t, tx.Rollback())
		requireSelect(t, ts, []series{committed}, 0, math.MaxInt64, all)
		require.Equal(t, []string{"__name__", "job"}, labelNames(t, ts, 0, math.MaxInt64, nil), "LabelNames after Rollback")
		require.Equal(t, []string{"kept"}, labelValues(t, ts, 0, math.MaxInt64, "__name__", nil), "LabelValues(__name__) after Rollback")
		require.Equal(t, []string{"a"}, labelValues(t, ts, 0, math.MaxInt64, "job", nil), "LabelValues(job) after Rollback")

		// The store takes the same data after the rollback.
		more := series{committed.lset, steps(11000, 1000, 10, constant(1))}
		write(t, ts, more)
		requireSelect(t, ts, merge([]series{committed, more}), 0, math.MaxInt64, all)
	})
}
