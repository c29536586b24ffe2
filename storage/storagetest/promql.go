package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Tenants of the PromQL suite. The shadow tenant receives a distorted copy
// (value -v-1000) of every float sample the suite loads, under the same
// labels, so that any leak between tenants changes query results. Its ID
// has the suite tenant's as a prefix on purpose.
const (
	promqlTenant       tenancy.ID = "promqltest"
	promqlShadowTenant tenancy.ID = "promqltest-shadow"
)

// RunPromQL runs the upstream PromQL acceptance suite
// (promqltest.RunBuiltinTestsWithStorage, every test file of prometheus
// v0.316.0, native histogram files included) with the backend as the
// storage, engine options as promqltest.NewTestEngine sets them (as
// Prometheus' own TestEvaluations does). Each test file (and each clear in
// it) gets a fresh store from b.Open, seen through one tenant's view while
// a shadow tenant holds distorted copies of the same series.
//
// start_timestamps.test needs the start timestamps of samples (AppenderV2's
// st, returned by Iterator.AtST), which the storage contract has backends
// keep.
func RunPromQL(t *testing.T, b Backend) { runPromQL(t, b, nil) }

// runPromQL is RunPromQL skipping the files skip returns a reason for
// (for the suite's own tests).
func runPromQL(t *testing.T, b Backend, skip func(file string) string) {
	if b.Open == nil {
		t.Fatal("storagetest.Backend needs Open")
	}
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	run := &fileFilter{T: t, seen: map[string]bool{}, skip: skip}
	promqltest.RunBuiltinTestsWithStorage(run, engine, func(tb testing.TB) promstorage.Storage {
		return openPromStorage(tb, b)
	})
	require.NotEmpty(t, run.seen, "no upstream test file ran")
}

// fileFilter is the promqltest.TBRun RunBuiltinTestsWithStorage runs its
// files through; it records the files that ran, and skips those skip (when
// set) gives a reason for.
type fileFilter struct {
	*testing.T
	seen map[string]bool
	skip func(file string) string
}

// Run runs f as subtest name (an upstream file such as
// "testdata/functions.test").
func (r *fileFilter) Run(name string, f func(*testing.T)) bool {
	file := path.Base(name)
	r.seen[file] = true
	return r.T.Run(name, func(t *testing.T) {
		if r.skip != nil {
			if reason := r.skip(file); reason != "" {
				t.Skip(reason)
			}
		}
		f(t)
	})
}

// promStorage adapts one tenant's view of a fresh store to the Prometheus
// storage.Storage the PromQL suite loads and queries.
type promStorage struct {
	storage.TenantStore
	store  storage.MetricsStore
	shadow storage.TenantStore
}

func openPromStorage(tb testing.TB, b Backend) *promStorage {
	st := b.Open(tb)
	return &promStorage{
		TenantStore: st.ForTenant(promqlTenant),
		store:       st,
		shadow:      st.ForTenant(promqlShadowTenant),
	}
}

// StartTime returns the oldest possible timestamp: the suite never asks,
// and a store's oldest sample is not part of the storage contract.
func (*promStorage) StartTime() (int64, error) { return math.MinInt64, nil }

// Close closes the store.
func (s *promStorage) Close() error { return s.store.Close() }

// Appender is there for promstorage.Storage only: the suite loads
// through AppenderV2, and Luminate's stores have no other appender.
func (*promStorage) Appender(context.Context) promstorage.Appender {
	panic("storagetest: the PromQL suite appends through AppenderV2")
}

// AppenderV2 is the appender the suite loads with.
func (s *promStorage) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &promAppender{main: s.TenantStore.AppenderV2(ctx), shadow: s.shadow.AppenderV2(ctx)}
}

// promAppender writes every sample to the suite tenant and a distorted
// copy to the shadow tenant.
type promAppender struct {
	main, shadow promstorage.AppenderV2
}

func (a *promAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	ref, err := a.main.Append(ref, ls, st, t, v, h, fh, opts)
	if err != nil {
		return ref, err
	}
	sv, sfh := shadowValue(v, h, fh)
	if _, err := a.shadow.Append(0, ls, st, t, sv, nil, sfh, opts); err != nil {
		return ref, fmt.Errorf("shadow tenant: %w", err)
	}
	return ref, nil
}

// shadowValue distorts a sample for the shadow tenant: a float v becomes
// -v-1000, a histogram a float histogram with 7 times the counts and sum.
// NaNs (staleness markers included) stay as they are.
func shadowValue(v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) (float64, *histogram.FloatHistogram) {
	switch {
	case h != nil:
		fh = h.ToFloat(nil)
	case fh != nil:
		fh = fh.Copy()
	case math.IsNaN(v):
		return v, nil
	default:
		return -v - 1000, nil
	}
	if math.IsNaN(fh.Sum) {
		return 0, fh
	}
	return 0, fh.Mul(7)
}

func (a *promAppender) Commit() error {
	return errors.Join(a.main.Commit(), a.shadow.Commit())
}

func (a *promAppender) Rollback() error {
	return errors.Join(a.main.Rollback(), a.shadow.Rollback())
}
