package badger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// auxTenant is one tenant's exemplars and metadata in memory.
//
// Exemplars are kept per series, sorted by time, and in one circular
// buffer of the tenant, in the order they were stored, as Prometheus'
// CircularExemplarStorage keeps them: at the tenant's bound the oldest
// stored is dropped first. The buffer holds a pointer per exemplar (the
// series it belongs to); memory is proportional to the bound.
type auxTenant struct {
	mu sync.RWMutex

	ring    []*exSeries // ring[(head+i)%len(ring)], i < n: oldest first
	head, n int
	series  map[uint64]*exSeries // by labels hash; collisions chained

	meta map[string]metadata.Metadata // by metric family
}

// exSeries is the exemplars of one series, sorted by time (Prometheus'
// rules only ever let a series' exemplars grow in time).
type exSeries struct {
	lset   labels.Labels
	hash   uint64
	ex     []exemplar.Exemplar
	next   *exSeries // next of the same hash
	linked bool      // in auxTenant.series; unlinked once emptied
}

func newAuxTenant() *auxTenant {
	return &auxTenant{series: map[uint64]*exSeries{}, meta: map[string]metadata.Metadata{}}
}

func (t *auxTenant) findLocked(hash uint64, lset labels.Labels) *exSeries {
	for s := t.series[hash]; s != nil; s = s.next {
		if labels.Equal(s.lset, lset) {
			return s
		}
	}
	return nil
}

// newest returns the newest exemplar stored for the series.
func (t *auxTenant) newest(hash uint64, lset labels.Labels) (exemplar.Exemplar, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if s := t.findLocked(hash, lset); s != nil && len(s.ex) > 0 {
		return s.ex[len(s.ex)-1], true
	}
	return exemplar.Exemplar{}, false
}

// checkExemplar applies Prometheus' per-series rules (tsdb/exemplar.go,
// with no out-of-order window) to e, given the series' newest exemplar:
// a duplicate of it is errDuplicateExemplar (dropped silently), an older
// one promstorage.ErrOutOfOrderExemplar. Exemplars of equal timestamps are
// ordered by value, then by labels hash, so a native histogram's several
// exemplars of one scrape are all kept.
func checkExemplar(newest, e exemplar.Exemplar) error {
	if newest.Equals(e) {
		return promstorage.ErrDuplicateExemplar
	}
	if e.Ts < newest.Ts ||
		e.Ts == newest.Ts && e.Value < newest.Value ||
		e.Ts == newest.Ts && e.Value == newest.Value && e.Labels.Hash() < newest.Labels.Hash() {
		return fmt.Errorf("%w: timestamp %d, the series' newest exemplar is at %d", promstorage.ErrOutOfOrderExemplar, e.Ts, newest.Ts)
	}
	return nil
}

// validateExemplar checks what does not depend on the series' other
// exemplars.
func validateExemplar(e exemplar.Exemplar) error {
	if name, dup := e.Labels.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("invalid exemplar: label name %q is not unique", name)
	}
	return storage.ValidateExemplar(e)
}

// addExemplarLocked stores e for the series unless the series' rules
// refuse it, first dropping the tenant's oldest exemplars when it is at
// limit (0: unlimited). It reports whether e was stored. Callers hold
// t.mu.
func (t *auxTenant) addExemplarLocked(hash uint64, lset labels.Labels, e exemplar.Exemplar, limit int) bool {
	_, ok := t.addToSeriesLocked(t.findLocked(hash, lset), hash, lset, e, limit)
	return ok
}

// addToSeriesLocked is addExemplarLocked given the series' entry, s (nil
// when it has none); it returns the entry that holds the series'
// exemplars afterwards.
func (t *auxTenant) addToSeriesLocked(s *exSeries, hash uint64, lset labels.Labels, e exemplar.Exemplar, limit int) (*exSeries, bool) {
	if s != nil && len(s.ex) > 0 && checkExemplar(s.ex[len(s.ex)-1], e) != nil {
		return s, false
	}
	for limit > 0 && t.n >= limit {
		t.evictOldestLocked()
	}
	if s == nil || !s.linked { // new, or emptied (and unlinked) by eviction
		s = &exSeries{lset: lset, hash: hash, next: t.series[hash], linked: true}
		t.series[hash] = s
	}
	s.ex = append(s.ex, e)
	if t.n == len(t.ring) {
		t.growLocked(limit)
	}
	t.ring[(t.head+t.n)%len(t.ring)] = s
	t.n++
	return s, true
}

func (t *auxTenant) growLocked(limit int) {
	c := max(64, 2*len(t.ring))
	if limit > 0 {
		c = max(min(c, limit), t.n+1)
	}
	ring := make([]*exSeries, c)
	for i := range t.n {
		ring[i] = t.ring[(t.head+i)%len(t.ring)]
	}
	t.ring, t.head = ring, 0
}

// evictOldestLocked drops the tenant's oldest stored exemplar.
func (t *auxTenant) evictOldestLocked() {
	s := t.ring[t.head]
	t.ring[t.head] = nil
	t.head = (t.head + 1) % len(t.ring)
	t.n--
	s.ex[0] = exemplar.Exemplar{}
	s.ex = s.ex[1:]
	if len(s.ex) == 0 {
		t.unlinkLocked(s)
	}
}

func (t *auxTenant) unlinkLocked(s *exSeries) {
	s.linked = false
	p := t.series[s.hash]
	if p == s {
		if s.next == nil {
			delete(t.series, s.hash)
		} else {
			t.series[s.hash] = s.next
		}
		return
	}
	for ; p != nil; p = p.next {
		if p.next == s {
			p.next = s.next
			return
		}
	}
}

// dropBeforeLocked drops the exemplars older than cutoff and returns how
// many it dropped.
func (t *auxTenant) dropBeforeLocked(cutoff int64) int {
	drop := map[*exSeries]int{}
	total := 0
	for _, s := range t.series {
		for ; s != nil; s = s.next {
			k := sort.Search(len(s.ex), func(i int) bool { return s.ex[i].Ts >= cutoff })
			if k > 0 {
				drop[s] = k
				total += k
			}
		}
	}
	if total == 0 {
		return 0
	}
	// A series' exemplars are in the ring in its own order: its first k
	// entries are its k oldest.
	ring := make([]*exSeries, max(64, len(t.ring)))
	n := 0
	for i := range t.n {
		s := t.ring[(t.head+i)%len(t.ring)]
		if drop[s] > 0 {
			drop[s]--
			continue
		}
		ring[n] = s
		n++
	}
	t.ring, t.head, t.n = ring, 0, n
	for s := range drop {
		k := sort.Search(len(s.ex), func(i int) bool { return s.ex[i].Ts >= cutoff })
		s.ex = slices.Clone(s.ex[k:])
		if len(s.ex) == 0 {
			t.unlinkLocked(s)
		}
	}
	return total
}

type snapshotExemplar struct {
	series int // index into the snapshot's series
	e      exemplar.Exemplar
}

// snapshot copies the tenant's series with exemplars, its exemplars,
// oldest stored first, and its metadata.
func (t *auxTenant) snapshot() ([]labels.Labels, []snapshotExemplar, []pendingMeta) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	exs := make([]snapshotExemplar, 0, t.n)
	type pos struct{ series, next int }
	at := make(map[*exSeries]*pos, len(t.series))
	var series []labels.Labels
	for i := range t.n {
		s := t.ring[(t.head+i)%len(t.ring)]
		p := at[s]
		if p == nil {
			p = &pos{series: len(series)}
			at[s] = p
			series = append(series, s.lset)
		}
		exs = append(exs, snapshotExemplar{p.series, s.ex[p.next]})
		p.next++
	}
	meta := make([]pendingMeta, 0, len(t.meta))
	for f, m := range t.meta {
		meta = append(meta, pendingMeta{family: f, m: m, changed: true})
	}
	slices.SortFunc(meta, func(a, b pendingMeta) int { return strings.Compare(a.family, b.family) })
	return series, exs, meta
}

// selectExemplars returns the exemplars in [start, end] of the series
// matching any of the matcher sets, by series labels.
func (t *auxTenant) selectExemplars(start, end int64, matchers [][]*labels.Matcher) []exemplar.QueryResult {
	out := []exemplar.QueryResult{}
	t.mu.RLock()
	for _, s := range t.series {
		for ; s != nil; s = s.next {
			if len(s.ex) == 0 || s.ex[0].Ts > end || s.ex[len(s.ex)-1].Ts < start || !matchesSomeMatcherSet(s.lset, matchers) {
				continue
			}
			lo := sort.Search(len(s.ex), func(i int) bool { return s.ex[i].Ts >= start })
			hi := sort.Search(len(s.ex), func(i int) bool { return s.ex[i].Ts > end })
			if lo < hi {
				out = append(out, exemplar.QueryResult{SeriesLabels: s.lset, Exemplars: slices.Clone(s.ex[lo:hi])})
			}
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out
}

// matchesSomeMatcherSet is Prometheus' exemplar matching: the matcher
// sets are OR'ed, the matchers of a set AND'ed.
func matchesSomeMatcherSet(lset labels.Labels, matchers [][]*labels.Matcher) bool {
outer:
	for _, ms := range matchers {
		for _, m := range ms {
			if !m.Matches(lset.Get(m.Name)) {
				continue outer
			}
		}
		return true
	}
	return false
}

// auxPending is what an appender queued for Commit besides samples: the
// exemplars of each series and the metadata that changed. Its memory is
// reused by the pooled appender.
type auxPending struct {
	series    []*pendingSeries
	seriesIdx map[uint64][]int // labels hash -> indexes into series
	nex       int
	meta      []pendingMeta
	metaIdx   map[string]int // family -> index into meta
}

type pendingSeries struct {
	lset labels.Labels
	hash uint64
	ex   []exemplar.Exemplar
}

// pendingMeta is a family's metadata as an appender last saw it: changed
// when it differs from what the store holds and is to be written.
type pendingMeta struct {
	family  string
	m       metadata.Metadata
	changed bool
}

func (p *auxPending) empty() bool {
	if p.nex > 0 {
		return false
	}
	for _, pm := range p.meta {
		if pm.changed {
			return false
		}
	}
	return true
}

// reset empties p, keeping what a small batch used for reuse: the pooled
// appender does not hold on to the memory of a large one.
func (p *auxPending) reset() {
	if len(p.series) == 0 && len(p.meta) == 0 {
		return
	}
	const keep = 1024
	clear(p.series)
	p.series = p.series[:0]
	clear(p.meta)
	p.meta = p.meta[:0]
	p.nex = 0
	if cap(p.series) > keep {
		p.series = nil
	}
	if cap(p.meta) > keep {
		p.meta = nil
	}
	if len(p.seriesIdx) > keep {
		p.seriesIdx = nil
	} else {
		clear(p.seriesIdx)
	}
	if len(p.metaIdx) > keep {
		p.metaIdx = nil
	} else {
		clear(p.metaIdx)
	}
}

func (p *auxPending) findSeries(hash uint64, lset labels.Labels) *pendingSeries {
	for _, i := range p.seriesIdx[hash] {
		if labels.Equal(p.series[i].lset, lset) {
			return p.series[i]
		}
	}
	return nil
}

// addSeries returns the pending entry of a series, adding it with lset
// (which it keeps) when it has none.
func (p *auxPending) addSeries(hash uint64, lset labels.Labels) *pendingSeries {
	if ps := p.findSeries(hash, lset); ps != nil {
		return ps
	}
	if p.seriesIdx == nil {
		p.seriesIdx = map[uint64][]int{}
	}
	ps := &pendingSeries{lset: lset, hash: hash}
	p.seriesIdx[hash] = append(p.seriesIdx[hash], len(p.series))
	p.series = append(p.series, ps)
	return ps
}

// isStale reports whether a sample is a stale marker: its exemplars and
// metadata are ignored, as Prometheus does.
func isStale(v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) bool {
	switch {
	case h != nil:
		return value.IsStaleNaN(h.Sum)
	case fh != nil:
		return value.IsStaleNaN(fh.Sum)
	}
	return value.IsStaleNaN(v)
}

// appendAux queues the exemplars and metadata that came with a sample of
// lset the appender has just queued. Refused exemplars come back as a
// *promstorage.AppendPartialError; duplicates are dropped silently.
func (a *appender) appendAux(lset labels.Labels, stale bool, opts *promstorage.AppendV2Options) error {
	if stale {
		return nil
	}
	if !opts.Metadata.IsEmpty() {
		a.queueMetadata(familyName(opts.MetricFamilyName, lset), opts.Metadata)
	}
	if len(opts.Exemplars) == 0 {
		return nil
	}
	var errs []promstorage.ExemplarError
	a.queueExemplars(lset, opts.Exemplars, func(i int, err error) {
		errs = append(errs, promstorage.ExemplarError{Index: i, Err: err})
	})
	if len(errs) > 0 {
		return &promstorage.AppendPartialError{ExemplarErrors: errs}
	}
	return nil
}

// queueExemplars validates exs (sorted by time) against the series' newest
// exemplar, stored or queued, and queues those that pass; refuse is called
// with the index and the reason of each that does not.
func (a *appender) queueExemplars(lset labels.Labels, exs []exemplar.Exemplar, refuse func(int, error)) {
	hash := lset.Hash()
	ps := a.aux.findSeries(hash, lset)
	var newest exemplar.Exemplar
	hasNewest := false
	if ps != nil && len(ps.ex) > 0 {
		newest, hasNewest = ps.ex[len(ps.ex)-1], true
	} else if t := a.st.aux.tenant(a.id, false); t != nil {
		newest, hasNewest = t.newest(hash, lset)
	}
	for i, e := range exs {
		e.Labels = e.Labels.WithoutEmpty()
		err := validateExemplar(e)
		if err == nil && hasNewest {
			err = checkExemplar(newest, e)
		}
		if errors.Is(err, promstorage.ErrDuplicateExemplar) {
			continue
		}
		if err != nil {
			refuse(i, err)
			continue
		}
		if ps == nil {
			// The appender keeps no reference to the caller's labels:
			// share the series' own, or copy.
			l := lset.Copy()
			if a.t != nil {
				if ser := a.t.lookup(hash, lset); ser != nil {
					l = ser.lset
				}
			}
			ps = a.aux.addSeries(hash, l)
		}
		e.Labels = e.Labels.Copy()
		ps.ex = append(ps.ex, e)
		a.aux.nex++
		newest, hasNewest = e, true
	}
}

// AppendExemplars queues exemplars of a series appended to before, in
// this appender or an earlier one (promstorage.ErrNotFound otherwise), as
// Append does with AppendV2Options.Exemplars.
func (a appenderV2) AppendExemplars(ref promstorage.SeriesRef, lset labels.Labels, exs []exemplar.Exemplar) (promstorage.SeriesRef, error) {
	if a.st == nil {
		return 0, errors.New("appender used after Commit or Rollback")
	}
	if !a.hasSeries(lset) {
		return 0, fmt.Errorf("exemplars of series %s, which has no samples: %w", lset.String(), promstorage.ErrNotFound)
	}
	if len(exs) == 0 {
		return ref, nil
	}
	return ref, a.appendAux(lset, false, &promstorage.AppendV2Options{Exemplars: exs})
}

// hasSeries reports whether the tenant has the series, or the appender
// has queued samples of it.
func (a *appender) hasSeries(lset labels.Labels) bool {
	if a.t == nil {
		t, err := a.st.tenantFor(a.id, false)
		if err != nil || t == nil {
			return false
		}
		a.t = t
	}
	h := lset.Hash()
	if a.t.lookup(h, lset) != nil {
		return true
	}
	for _, i := range a.newByHash[h] {
		if labels.Equal(a.newLabels[i], lset) {
			return true
		}
	}
	return false
}

var _ promstorage.ExemplarAppenderV2 = appenderV2{}

// commitAux makes the appender's exemplars and metadata durable, after
// its samples.
func (a *appender) commitAux() error {
	if a.aux.empty() {
		return nil
	}
	if err := a.st.writable(); err != nil {
		return err
	}
	if err := a.st.aux.commit(a.id, &a.aux); err != nil {
		a.st.failed(&a.st.walErr, failWAL, err)
		return err
	}
	return nil
}

// exemplarQuerier reads one tenant's exemplars.
type exemplarQuerier struct {
	x  *auxStore
	id tenancy.ID
}

// Select returns the tenant's exemplars in [start, end] of the series
// matching any of the matcher sets, sorted by series labels, each
// series' exemplars by time.
func (q exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	t := q.x.tenant(q.id, false)
	if t == nil || len(matchers) == 0 {
		return []exemplar.QueryResult{}, nil
	}
	return t.selectExemplars(start, end, matchers), nil
}

// exemplarQuerier returns the querier of the tenant's exemplars.
func (v *tenantStore) exemplarQuerier(context.Context) (promstorage.ExemplarQuerier, error) {
	if v.st.closed.Load() {
		return nil, fmt.Errorf("%w: store closed", storage.ErrUnavailable)
	}
	return exemplarQuerier{x: v.st.aux, id: v.id}, nil
}
