package storagetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// TestReferenceStore runs the histogram, exemplar and metadata cases
// against refStore, an in-memory store written to the contract whose
// chunks are Prometheus' own encoding (storage.NewSeriesToChunkEncoder):
// the cases must pass on a store that keeps the contract, or they ask for
// something Prometheus itself does not give.
func TestReferenceStore(t *testing.T) {
	b := Backend{
		Open:    func(testing.TB) storage.MetricsStore { return newRefStore(0, 0) },
		Limited: func(_ testing.TB, e, m int) storage.MetricsStore { return newRefStore(e, m) },
		Reopen: func(_ testing.TB, s storage.MetricsStore) storage.MetricsStore {
			return s.(*refStore).reopen()
		},
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"HistogramRoundTrip", testHistogramRoundTrip},
		{"HistogramOutOfOrder", testHistogramOutOfOrder},
		{"HistogramPersistence", testHistogramPersistence},
		{"HistogramTenantIsolation", testHistogramTenantIsolation},
		{"Exemplars", testExemplars},
		{"ExemplarBound", testExemplarBound},
		{"ExemplarPersistence", testExemplarPersistence},
		{"ExemplarTenantIsolation", testExemplarTenantIsolation},
		{"Metadata", testMetadata},
		{"MetadataBound", testMetadataBound},
		{"MetadataPersistence", testMetadataPersistence},
		{"MetadataTenantIsolation", testMetadataTenantIsolation},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

type refStore struct {
	mu           sync.Mutex
	maxEx, maxMd int
	tenants      map[tenancy.ID]*refTenant
}

type refTenant struct {
	series    map[string]*refSeries
	exemplars []refExemplar // oldest first
	newest    map[string]exemplar.Exemplar
	meta      map[string]metadata.Metadata
}

type refSeries struct {
	lset    labels.Labels
	samples map[int64]hsample
}

type refExemplar struct {
	series string
	e      exemplar.Exemplar
}

func newRefStore(maxEx, maxMd int) *refStore {
	return &refStore{maxEx: maxEx, maxMd: maxMd, tenants: map[tenancy.ID]*refTenant{}}
}

// reopen returns a new store over the same data (what a durable store
// does).
func (s *refStore) reopen() *refStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &refStore{maxEx: s.maxEx, maxMd: s.maxMd, tenants: s.tenants}
}

func (s *refStore) tenant(id tenancy.ID) *refTenant {
	t, ok := s.tenants[id]
	if !ok {
		t = &refTenant{series: map[string]*refSeries{}, newest: map[string]exemplar.Exemplar{}, meta: map[string]metadata.Metadata{}}
		s.tenants[id] = t
	}
	return t
}

func (s *refStore) ForTenant(id tenancy.ID) storage.TenantStore { return &refView{s, id} }
func (*refStore) Ready(context.Context) error                   { return nil }
func (*refStore) Health(context.Context) storage.Health         { return storage.Health{} }
func (*refStore) Close() error                                  { return nil }

type refView struct {
	s  *refStore
	id tenancy.ID
}

func (v *refView) AppenderV2(context.Context) promstorage.AppenderV2 {
	return &refAppender{v}
}
func (v *refView) Querier(mint, maxt int64) (promstorage.Querier, error) {
	return &refQuerier{v, mint, maxt}, nil
}
func (v *refView) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	return refChunks{&refQuerier{v, mint, maxt}}, nil
}
func (v *refView) ExemplarQuerier(context.Context) (promstorage.ExemplarQuerier, error) {
	return &refExemplarQuerier{v}, nil
}
func (*refView) Cardinality(context.Context, storage.CardinalityRequest) (storage.Cardinality, error) {
	return storage.Cardinality{}, nil
}

// The reference store does not delete (the delete cases run on the backends).
func (*refView) DeleteSeries(context.Context, storage.DeleteRequest) (storage.DeleteResult, error) {
	return storage.DeleteResult{}, errors.ErrUnsupported
}
func (*refView) CleanTombstones(context.Context) error { return errors.ErrUnsupported }

func (v *refView) Metadata(_ context.Context, metric string, limit int) (map[string]metadata.Metadata, error) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	out := map[string]metadata.Metadata{}
	for _, name := range slices.Sorted(maps.Keys(v.s.tenant(v.id).meta)) {
		if (metric == "" || metric == name) && (limit <= 0 || len(out) < limit) {
			out[name] = v.s.tenant(v.id).meta[name]
		}
	}
	return out, nil
}

// refAppender applies every Append at once (the cases never roll back).
type refAppender struct{ v *refView }

func (a *refAppender) Append(_ promstorage.SeriesRef, l labels.Labels, _, t int64, f float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if l.Has(tenancy.Label) {
		return 0, storage.ErrTenantLabel
	}
	s := a.v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	tn := s.tenant(a.v.id)
	k := l.String()
	sr, ok := tn.series[k]
	if !ok {
		sr = &refSeries{lset: l.Copy(), samples: map[int64]hsample{}}
		tn.series[k] = sr
	}
	if h != nil {
		h = h.Copy()
	}
	if fh != nil {
		fh = fh.Copy()
	}
	sr.samples[t] = hsample{T: t, F: f, H: h, FH: fh}
	if !opts.Metadata.IsEmpty() {
		fam := opts.MetricFamilyName
		if fam == "" {
			fam = l.Get(labels.MetricName)
		}
		if _, ok := tn.meta[fam]; ok || s.maxMd == 0 || len(tn.meta) < s.maxMd {
			tn.meta[fam] = opts.Metadata
		}
	}
	var pErr promstorage.AppendPartialError
	for i, e := range opts.Exemplars {
		err := storage.ValidateExemplar(e)
		if n, ok := tn.newest[k]; err == nil && ok {
			switch {
			case n.Equals(e):
				continue
			case e.Ts < n.Ts:
				err = promstorage.ErrOutOfOrderExemplar
			}
		}
		if err != nil {
			pErr.ExemplarErrors = append(pErr.ExemplarErrors, promstorage.ExemplarError{Index: i, Err: err})
			continue
		}
		tn.newest[k] = e
		tn.exemplars = append(tn.exemplars, refExemplar{k, e})
		if s.maxEx > 0 && len(tn.exemplars) > s.maxEx {
			tn.exemplars = tn.exemplars[len(tn.exemplars)-s.maxEx:]
		}
	}
	return 1, pErr.ToError()
}

// AppendExemplars adds exemplars to a series that has samples.
func (a *refAppender) AppendExemplars(ref promstorage.SeriesRef, l labels.Labels, es []exemplar.Exemplar) (promstorage.SeriesRef, error) {
	s := a.v.s
	s.mu.Lock()
	sr, ok := s.tenant(a.v.id).series[l.String()]
	s.mu.Unlock()
	if !ok || len(sr.samples) == 0 {
		return 0, promstorage.ErrNotFound
	}
	// Appending the series' newest sample again changes nothing but adds
	// the exemplars.
	var last hsample
	first := true
	for t, smp := range sr.samples {
		if first || t > last.T {
			last, first = smp, false
		}
	}
	return a.Append(ref, l, 0, last.T, last.F, last.H, last.FH, promstorage.AOptions{Exemplars: es})
}

func (*refAppender) Commit() error   { return nil }
func (*refAppender) Rollback() error { return errors.New("refStore cannot roll back") }

type refQuerier struct {
	v          *refView
	mint, maxt int64
}

// series returns the whole series ms select that have a sample in
// [mint, maxt].
func (q *refQuerier) series(ms []*labels.Matcher) []promstorage.Series {
	s := q.v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []promstorage.Series
	tn := s.tenant(q.v.id)
	for _, k := range slices.Sorted(maps.Keys(tn.series)) {
		sr := tn.series[k]
		if !matches(sr.lset, ms) {
			continue
		}
		var smp []chunks.Sample
		in := false
		for _, t := range slices.Sorted(maps.Keys(sr.samples)) {
			smp = append(smp, refSample{sr.samples[t]})
			in = in || t >= q.mint && t <= q.maxt
		}
		if in {
			out = append(out, promstorage.NewListSeries(sr.lset, smp))
		}
	}
	slices.SortFunc(out, func(a, b promstorage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return out
}

// Select decodes the chunks selectChunks encodes, as a store of
// Prometheus chunks does (the upstream PromQL suite expects the counter
// reset hints Prometheus' chunk iterators give), within [mint, maxt].
func (q *refQuerier) Select(_ context.Context, _ bool, _ *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	var out []promstorage.Series
	set := promstorage.NewSeriesSetFromChunkSeriesSet(q.selectChunks(ms))
	for set.Next() {
		out = append(out, rangeSeries{set.At(), q.mint, q.maxt})
	}
	return &listSet[promstorage.Series]{list: out}
}

// selectChunks encodes every series ms select with Prometheus' chunk
// encoder, and returns the chunks that overlap [mint, maxt] whole.
func (q *refQuerier) selectChunks(ms []*labels.Matcher) promstorage.ChunkSeriesSet {
	var out []promstorage.ChunkSeries
	for _, s := range q.series(ms) {
		var metas []chunks.Meta
		it := promstorage.NewSeriesToChunkEncoder(s).Iterator(nil)
		for it.Next() {
			if m := it.At(); m.MaxTime >= q.mint && m.MinTime <= q.maxt {
				metas = append(metas, m)
			}
		}
		out = append(out, &promstorage.ChunkSeriesEntry{
			Lset:            s.Labels(),
			ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator { return promstorage.NewListChunkSeriesIterator(metas...) },
		})
	}
	return &listSet[promstorage.ChunkSeries]{list: out}
}

type rangeSeries struct {
	promstorage.Series
	mint, maxt int64
}

func (s rangeSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &rangeIterator{Iterator: s.Series.Iterator(nil), mint: s.mint, maxt: s.maxt}
}

// rangeIterator yields the samples of Iterator within [mint, maxt].
type rangeIterator struct {
	chunkenc.Iterator
	mint, maxt int64
}

func (it *rangeIterator) Next() chunkenc.ValueType {
	for vt := it.Iterator.Next(); vt != chunkenc.ValNone; vt = it.Iterator.Next() {
		switch t := it.AtT(); {
		case t > it.maxt:
			return chunkenc.ValNone
		case t >= it.mint:
			return vt
		}
	}
	return chunkenc.ValNone
}

func (it *rangeIterator) Seek(t int64) chunkenc.ValueType {
	vt := it.Iterator.Seek(max(t, it.mint))
	if vt != chunkenc.ValNone && it.AtT() > it.maxt {
		return chunkenc.ValNone
	}
	return vt
}

func (*refQuerier) LabelValues(context.Context, string, *promstorage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not in refStore")
}
func (*refQuerier) LabelNames(context.Context, *promstorage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not in refStore")
}
func (*refQuerier) Close() error { return nil }

// refQuerier is a Querier; refChunks makes it a ChunkQuerier.
var (
	_ promstorage.Querier      = (*refQuerier)(nil)
	_ promstorage.ChunkQuerier = refChunks{}
)

type refChunks struct{ *refQuerier }

func (q refChunks) Select(_ context.Context, _ bool, _ *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return q.selectChunks(ms)
}

type listSet[T promstorage.Labels] struct {
	list []T
	cur  T
}

func (s *listSet[T]) Next() bool {
	if len(s.list) == 0 {
		return false
	}
	s.cur, s.list = s.list[0], s.list[1:]
	return true
}
func (s *listSet[T]) At() T                           { return s.cur }
func (*listSet[T]) Err() error                        { return nil }
func (*listSet[T]) Warnings() annotations.Annotations { return nil }

type refSample struct{ s hsample }

func (r refSample) T() int64   { return r.s.T }
func (refSample) ST() int64    { return 0 }
func (r refSample) F() float64 { return r.s.F }
func (r refSample) H() *histogram.Histogram {
	if r.s.H == nil {
		return nil
	}
	return r.s.H.Copy() // PromQL may change what iterators return
}
func (r refSample) FH() *histogram.FloatHistogram {
	// The iterator contract: AtFloatHistogram converts an integer
	// histogram (storage.NewListSeries does not).
	if r.s.H != nil {
		return r.s.H.ToFloat(nil)
	}
	if r.s.FH == nil {
		return nil
	}
	return r.s.FH.Copy()
}
func (r refSample) Type() chunkenc.ValueType { return r.s.kind() }
func (r refSample) Copy() chunks.Sample      { return r }

type refExemplarQuerier struct{ v *refView }

func (q *refExemplarQuerier) Select(start, end int64, sets ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	s := q.v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	tn := s.tenant(q.v.id)
	var out []exemplar.QueryResult
	idx := map[string]int{}
	for _, re := range tn.exemplars {
		lset := tn.series[re.series].lset
		if re.e.Ts < start || re.e.Ts > end || !slices.ContainsFunc(sets, func(ms []*labels.Matcher) bool { return matches(lset, ms) }) {
			continue
		}
		i, ok := idx[re.series]
		if !ok {
			i = len(out)
			idx[re.series] = i
			out = append(out, exemplar.QueryResult{SeriesLabels: lset})
		}
		out[i].Exemplars = append(out[i].Exemplars, re.e)
	}
	return out, nil
}

// TestReferencePromQL runs the upstream PromQL suite on refStore: every
// file passes on a store that keeps the contract, but
// start_timestamps.test, which needs the start timestamps the contract
// lets a backend ignore (refStore does).
func TestReferencePromQL(t *testing.T) {
	runPromQL(t, Backend{Open: func(testing.TB) storage.MetricsStore { return newRefStore(0, 0) }}, func(file string) string {
		if file == "start_timestamps.test" {
			return "refStore ignores start timestamps, as the storage contract allows"
		}
		return ""
	})
}
