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

// txn is one append transaction through either Prometheus appender
// interface, reduced to what the cases need.
type txn interface {
	// add appends one float sample. ref is 0 or a reference an earlier add
	// returned for the same label set.
	add(ref promstorage.SeriesRef, l labels.Labels, t int64, f float64) (promstorage.SeriesRef, error)
	Commit() error
	Rollback() error
}

type v1Txn struct{ app promstorage.Appender }

func (x v1Txn) add(ref promstorage.SeriesRef, l labels.Labels, t int64, f float64) (promstorage.SeriesRef, error) {
	return x.app.Append(ref, l, t, f)
}
func (x v1Txn) Commit() error   { return x.app.Commit() }
func (x v1Txn) Rollback() error { return x.app.Rollback() }

type v2Txn struct{ app promstorage.AppenderV2 }

func (x v2Txn) add(ref promstorage.SeriesRef, l labels.Labels, t int64, f float64) (promstorage.SeriesRef, error) {
	return x.app.Append(ref, l, 0, t, f, nil, nil, promstorage.AOptions{})
}
func (x v2Txn) Commit() error   { return x.app.Commit() }
func (x v2Txn) Rollback() error { return x.app.Rollback() }

// appenderKind names one of the two Prometheus appender interfaces; cases
// that write run once per kind.
type appenderKind struct {
	name  string
	begin func(ctx context.Context, ts storage.TenantStore) txn
}

var appenderKinds = []appenderKind{
	{"Appender", func(ctx context.Context, ts storage.TenantStore) txn { return v1Txn{ts.Appender(ctx)} }},
	{"AppenderV2", func(ctx context.Context, ts storage.TenantStore) txn { return v2Txn{ts.AppenderV2(ctx)} }},
}

// v2 is the kind used where the appender interface does not matter; the
// PromQL suite and the remote-write receiver use AppenderV2.
var v2 = appenderKinds[1]

// write appends ss in one transaction, series after series (as a remote
// write request arrives), and commits it.
func write(t testing.TB, kind appenderKind, ts storage.TenantStore, ss ...series) {
	t.Helper()
	tx := kind.begin(t.Context(), ts)
	for _, s := range ss {
		for _, smp := range s.samples {
			if _, err := tx.add(0, s.lset, smp.T, smp.F); err != nil {
				_ = tx.Rollback()
				require.NoError(t, err, "%s.Append(%s, %d, %s)", kind.name, s.lset, smp.T, fmtValue(smp.F))
			}
		}
	}
	require.NoError(t, tx.Commit(), "%s.Commit", kind.name)
}

// writeScrapes appends ss as a scraper would: one transaction per
// timestamp holding every series' sample at that timestamp, reusing the
// series references the appender returned. All series must share their
// timestamps.
func writeScrapes(t testing.TB, kind appenderKind, ts storage.TenantStore, ss ...series) {
	t.Helper()
	if len(ss) == 0 {
		return
	}
	refs := make([]promstorage.SeriesRef, len(ss))
	for i := range ss[0].samples {
		tx := kind.begin(t.Context(), ts)
		for j, s := range ss {
			smp := s.samples[i]
			ref, err := tx.add(refs[j], s.lset, smp.T, smp.F)
			if err != nil {
				_ = tx.Rollback()
				require.NoError(t, err, "%s.Append(ref=%d, %s, %d, %s)", kind.name, refs[j], s.lset, smp.T, fmtValue(smp.F))
			}
			refs[j] = ref
		}
		require.NoError(t, tx.Commit(), "%s.Commit of scrape %d", kind.name, i)
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
