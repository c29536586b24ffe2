package storagetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
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

// skippedFile says why an upstream test file does not run in full.
type skippedFile struct {
	// histograms is why the file needs native histograms.
	histograms string
	// floatsNeed, when set, names what else the file's float samples need
	// that the storage contract does not provide; the file is then skipped
	// in the "floats of histogram files" pass too.
	floatsNeed string
}

// nativeHistogramFiles are the upstream test files (promql/promqltest/testdata
// of prometheus v0.316.0) skipped in the "upstream" pass because they load
// native histogram samples ({{...}} in load commands, or load_with_nhcb,
// which converts classic histograms to native ones), and Luminate backends
// store float samples only: a load that fails fails its whole file. Every
// other file is float-only and runs in full. The list comes from scanning
// every load block of every file for histogram samples; RunPromQL fails if
// an entry names no upstream file. Native histogram storage empties it.
//
// The float parts of these files still run against the backend, in the
// "floats of histogram files" pass: there the native histogram samples go
// to a Prometheus TSDB, every float sample to the backend, and queries
// read both. A file failing there fails for a reason other than histograms;
// only floatsNeed may exclude a file from that pass.
var nativeHistogramFiles = map[string]skippedFile{
	// Sums, averages, counts, quantiles, limitk and grouping over native
	// histograms (data_histogram, http_requests_histogram, series{label=..})
	// and over vectors mixing floats and histograms.
	"aggregators.test": {histograms: "loads native histograms (9 series) for aggregations over histograms and mixed vectors"},
	// Anchored and smoothed range selectors (rate, increase, delta) over
	// native histogram and mixed float/histogram series.
	"extended_vectors.test": {histograms: "loads native histograms (19 series) for anchored/smoothed selectors over histograms"},
	// rate, increase, delta, deriv, resets, changes, clamp, sgn,
	// histogram_* and friends on native histograms and mixed series.
	"functions.test": {histograms: "loads native histograms (56 series) for functions applied to histograms"},
	// Classic histograms loaded with load_with_nhcb (converted to native
	// histograms with custom buckets) next to native histograms.
	"histograms.test": {histograms: "load_with_nhcb (34 blocks) converts classic histograms to native histograms with custom buckets"},
	// info() joined with one native histogram series.
	"info.test": {histograms: "loads one native histogram series for info()"},
	// limitk and limit_ratio over a vector mixing floats and histograms.
	"limit.test": {histograms: "its only load block mixes native histograms into http_requests"},
	// Native histograms are the subject of the file.
	"native_histograms.test": {histograms: "native histograms throughout (151 histogram series, load_with_nhcb)"},
	// Arithmetic and comparison operators between native histograms, and one
	// load_with_nhcb block.
	"operators.test": {histograms: "loads native histograms (3 series, one load_with_nhcb block) for operators between histograms"},
	// One native histogram series in the range query cases.
	"range_queries.test": {histograms: "loads one native histogram series"},
	// Start timestamps of native histogram and float counters. The float
	// cases need per-sample start timestamps (the @st lines) stored and
	// returned by the iterators' AtST: AppenderV2 makes storing them
	// optional (st 0 means unknown) and no Luminate backend stores them, so
	// the file fails for that reason too.
	"start_timestamps.test": {
		histograms: "loads native histograms (7 series) with start timestamps",
		floatsNeed: "per-sample start timestamps (AppenderV2 st, Iterator.AtST), which backends do not store",
	},
	// One native histogram series in subqueries.
	"subquery.test": {histograms: "loads one native histogram series"},
}

// RunPromQL runs the upstream PromQL acceptance suite
// (promqltest.RunBuiltinTestsWithStorage, every test file of prometheus
// v0.316.0) with the backend as the storage, engine options as
// promqltest.NewTestEngine sets them. Each test file (and each clear in it)
// gets a fresh store from b.Open, seen through one tenant's view while a
// shadow tenant holds distorted copies of the same series.
//
// It runs two passes: "upstream" runs every file except nativeHistogramFiles;
// "floats of histogram files" runs those files with their native histogram
// samples kept in a Prometheus TSDB next to the backend.
func RunPromQL(t *testing.T, b Backend) {
	if b.Open == nil {
		t.Fatal("storagetest.Backend needs Open")
	}
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)

	t.Run("upstream", func(t *testing.T) {
		run := &fileFilter{T: t, seen: map[string]bool{}, include: func(file string) string {
			if f, ok := nativeHistogramFiles[file]; ok {
				return "native histograms are not stored yet: " + f.histograms
			}
			return ""
		}}
		promqltest.RunBuiltinTestsWithStorage(run, engine, func(tb testing.TB) promstorage.Storage {
			return openPromStorage(tb, b, nil)
		})
		for _, f := range slices.Sorted(maps.Keys(nativeHistogramFiles)) {
			require.True(t, run.seen[f], "nativeHistogramFiles names %s, which is not an upstream test file: remove the entry", f)
		}
	})

	t.Run("floats of histogram files", func(t *testing.T) {
		run := &fileFilter{T: t, seen: map[string]bool{}, include: func(file string) string {
			f, ok := nativeHistogramFiles[file]
			switch {
			case !ok:
				return "-" // float-only, ran in full in the upstream pass
			case f.floatsNeed != "":
				return "the float samples need " + f.floatsNeed
			}
			return ""
		}}
		promqltest.RunBuiltinTestsWithStorage(run, engine, func(tb testing.TB) promstorage.Storage {
			return openPromStorage(tb, b, promqltest.NewBuiltinTestStorage(tb))
		})
	})
}

// fileFilter is the promqltest.TBRun RunBuiltinTestsWithStorage runs its
// files through. include returns "" to run a file, a reason to skip it, or
// "-" to leave it out silently.
type fileFilter struct {
	*testing.T
	include func(file string) string
	seen    map[string]bool
}

// Run runs f as subtest name (an upstream file such as
// "testdata/functions.test") unless include excludes it.
func (r *fileFilter) Run(name string, f func(*testing.T)) bool {
	file := path.Base(name)
	r.seen[file] = true
	reason := r.include(file)
	if reason == "-" {
		return true
	}
	return r.T.Run(name, func(t *testing.T) {
		if reason != "" {
			t.Skip(reason)
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
	// hist, when set, stores the native histogram samples.
	hist promstorage.Storage
}

func openPromStorage(tb testing.TB, b Backend, hist promstorage.Storage) *promStorage {
	st := b.Open(tb)
	return &promStorage{
		TenantStore: st.ForTenant(promqlTenant),
		store:       st,
		shadow:      st.ForTenant(promqlShadowTenant),
		hist:        hist,
	}
}

// StartTime returns the oldest possible timestamp: the suite never asks,
// and a store's oldest sample is not part of the storage contract.
func (*promStorage) StartTime() (int64, error) { return math.MinInt64, nil }

// Close closes the store (and the histogram TSDB).
func (s *promStorage) Close() error {
	err := s.store.Close()
	if s.hist != nil {
		err = errors.Join(err, s.hist.Close())
	}
	return err
}

// AppenderV2 is the appender the suite loads with.
func (s *promStorage) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	a := &promAppender{main: s.TenantStore.AppenderV2(ctx), shadow: s.shadow.AppenderV2(ctx)}
	if s.hist != nil {
		a.hist = s.hist.AppenderV2(ctx)
	}
	return a
}

// Querier merges the histogram TSDB's series in when there is one.
func (s *promStorage) Querier(mint, maxt int64) (promstorage.Querier, error) {
	q, err := s.TenantStore.Querier(mint, maxt)
	if err != nil || s.hist == nil {
		return q, err
	}
	hq, err := s.hist.Querier(mint, maxt)
	if err != nil {
		return nil, errors.Join(err, q.Close())
	}
	return promstorage.NewMergeQuerier([]promstorage.Querier{q, hq}, nil, promstorage.ChainedSeriesMerge), nil
}

// ChunkQuerier merges the histogram TSDB's series in when there is one.
func (s *promStorage) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	q, err := s.TenantStore.ChunkQuerier(mint, maxt)
	if err != nil || s.hist == nil {
		return q, err
	}
	hq, err := s.hist.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, errors.Join(err, q.Close())
	}
	return promstorage.NewMergeChunkQuerier([]promstorage.ChunkQuerier{q, hq}, nil,
		promstorage.NewCompactingChunkSeriesMerger(promstorage.ChainedSeriesMerge)), nil
}

// promAppender writes every float sample to the suite tenant and a
// distorted copy to the shadow tenant; histogram samples go to hist when
// set, else to the suite tenant (which may refuse them).
type promAppender struct {
	main, shadow, hist promstorage.AppenderV2
}

func (a *promAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	if h != nil || fh != nil {
		if a.hist != nil {
			return a.hist.Append(0, ls, st, t, v, h, fh, opts)
		}
		return a.main.Append(ref, ls, st, t, v, h, fh, opts)
	}
	ref, err := a.main.Append(ref, ls, st, t, v, nil, nil, opts)
	if err != nil {
		return ref, err
	}
	if _, err := a.shadow.Append(0, ls, st, t, shadowValue(v), nil, nil, opts); err != nil {
		return ref, fmt.Errorf("shadow tenant: %w", err)
	}
	return ref, nil
}

// shadowValue distorts v for the shadow tenant; NaNs (staleness markers
// included) stay as they are.
func shadowValue(v float64) float64 {
	if math.IsNaN(v) {
		return v
	}
	return -v - 1000
}

func (a *promAppender) Commit() error {
	err := errors.Join(a.main.Commit(), a.shadow.Commit())
	if a.hist != nil {
		err = errors.Join(err, a.hist.Commit())
	}
	return err
}

func (a *promAppender) Rollback() error {
	err := errors.Join(a.main.Rollback(), a.shadow.Rollback())
	if a.hist != nil {
		err = errors.Join(err, a.hist.Rollback())
	}
	return err
}
