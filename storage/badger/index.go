package badger

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/tenancy"
)

// tenant is one tenant's in-memory series index: labels -> series, and
// inverted postings per label pair. It is rebuilt at start from the 'S'
// keys and the WAL, so matchers and label lookups never touch samples.
type tenant struct {
	id  tenancy.ID
	num uint32

	// stripes map a labels hash to its series (the first of a collision
	// chain). Appends look series up here under a stripe's read lock only,
	// so concurrent appenders do not share one lock word per sample.
	// Writers hold mu and the stripe's lock.
	stripes [numStripes]stripe

	mu       sync.RWMutex
	postings map[string]map[string][]*series // name -> value -> series sorted by id
	all      []*series                       // every series, sorted by id

	active atomic.Int64 // series with an open head

	activeCount activeCount // active series as the series limit counts them (active.go)
	// stats are the cardinality statistics (cardinality.go), kept up to
	// date under mu by addLocked and removeLocked.
	stats indexStats
	// handleOwner tells this tenant index apart from every other, of this
	// store or another: the series handles (appender.go) it gives out are
	// good for it only.
	handleOwner uint64
}

const numStripes = 512

type stripe struct {
	mu sync.RWMutex
	m  map[uint64]*series
	_  [32]byte // keep neighbouring stripes' locks on separate cache lines
}

func newTenant(id tenancy.ID, num uint32) *tenant {
	t := &tenant{
		id:       id,
		num:      num,
		postings: map[string]map[string][]*series{},
		stats:    indexStats{byName: map[string]*labelStat{}},
		// Random, never 0: distinct from every other index's with
		// overwhelming probability.
		handleOwner: rand.Uint64() | 1,
	}
	for i := range t.stripes {
		t.stripes[i].m = map[uint64]*series{}
	}
	return t
}

func (t *tenant) stripe(hash uint64) *stripe { return &t.stripes[hash%numStripes] }

// lookup returns the series with exactly these labels, or nil.
func (t *tenant) lookup(hash uint64, lset labels.Labels) *series {
	st := t.stripe(hash)
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.find(hash, lset)
}

// lookupLocked is lookup for callers holding t.mu, which every writer of
// the stripes holds too.
func (t *tenant) lookupLocked(hash uint64, lset labels.Labels) *series {
	return t.stripe(hash).find(hash, lset)
}

func (st *stripe) find(hash uint64, lset labels.Labels) *series {
	for s := st.m[hash]; s != nil; s = s.nextInHash {
		if labels.Equal(s.lset, lset) {
			return s
		}
	}
	return nil
}

// addLocked indexes s. Callers add series in ascending id order per tenant
// or call sortPostings afterwards.
func (t *tenant) addLocked(hash uint64, s *series) {
	st := t.stripe(hash)
	st.mu.Lock()
	s.nextInHash = st.m[hash]
	st.m[hash] = s
	st.mu.Unlock()
	t.all = append(t.all, s)
	s.lset.Range(func(l labels.Label) {
		vals := t.postings[l.Name]
		if vals == nil {
			vals = map[string][]*series{}
			t.postings[l.Name] = vals
		}
		vals[l.Value] = append(vals[l.Value], s)
		t.stats.add(l, len(vals[l.Value]) == 1)
	})
}

// sortLocked restores id order after out-of-order additions (recovery).
func (t *tenant) sortLocked() {
	byID := func(a, b *series) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	}
	slices.SortFunc(t.all, byID)
	for _, vals := range t.postings {
		for _, list := range vals {
			slices.SortFunc(list, byID)
		}
	}
}

// removeLocked drops the given series from the index.
func (t *tenant) removeLocked(dead map[*series]bool) {
	keep := func(list []*series) []*series {
		out := list[:0]
		for _, s := range list {
			if !dead[s] {
				out = append(out, s)
			}
		}
		return out
	}
	t.all = keep(t.all)
	for s := range dead {
		s.lset.Range(t.stats.remove)
	}
	for name, vals := range t.postings {
		for v, list := range vals {
			if list = keep(list); len(list) == 0 {
				t.stats.pairs--
				delete(vals, v)
			} else {
				vals[v] = list
			}
		}
		if len(vals) == 0 {
			delete(t.postings, name)
		}
	}
	for s := range dead {
		s.removed.Store(true) // its handles (appender.go) are stale from now on
		h := s.lset.Hash()
		st := t.stripe(h)
		st.mu.Lock()
		var prev *series
		for c := st.m[h]; c != nil; c = c.nextInHash {
			if c == s {
				if prev == nil {
					if c.nextInHash == nil {
						delete(st.m, h)
					} else {
						st.m[h] = c.nextInHash
					}
				} else {
					prev.nextInHash = c.nextInHash
				}
				break
			}
			prev = c
		}
		st.mu.Unlock()
	}
}

// selectLocked returns the series matching every matcher, sorted by id.
// It follows Prometheus' semantics: a matcher that matches the empty string
// also selects series that lack the label.
func (t *tenant) selectLocked(ms []*labels.Matcher) []*series {
	var result []*series
	havePositive := false
	var negatives []*labels.Matcher
	for _, m := range ms {
		if m.Name == tenancy.Label {
			// No stored series carries the tenant label: it behaves as absent.
			if !m.Matches("") {
				return nil
			}
			continue
		}
		if m.Matches("") {
			negatives = append(negatives, m)
			continue
		}
		list := t.matchingLocked(m)
		if !havePositive {
			result, havePositive = list, true
		} else {
			result = intersect(result, list)
		}
		if len(result) == 0 {
			return nil
		}
	}
	if !havePositive {
		result = t.all
	}
	for _, m := range negatives {
		// Remove series whose value for m.Name is set and does not match.
		var drop []*series
		for v, list := range t.postings[m.Name] {
			if !m.Matches(v) {
				drop = append(drop, list...)
			}
		}
		if len(drop) > 0 {
			sortByID(drop)
			result = subtract(result, drop)
		}
	}
	return result
}

// matchingLocked returns the series whose value for m.Name matches m (m does
// not match the empty string, so the label must be present).
func (t *tenant) matchingLocked(m *labels.Matcher) []*series {
	vals := t.postings[m.Name]
	if len(vals) == 0 {
		return nil
	}
	if m.Type == labels.MatchEqual {
		return vals[m.Value]
	}
	var lists [][]*series
	if set := m.SetMatches(); len(set) > 0 && m.Type == labels.MatchRegexp {
		for _, v := range set {
			if l := vals[v]; len(l) > 0 {
				lists = append(lists, l)
			}
		}
	} else {
		for v, l := range vals {
			if m.Matches(v) {
				lists = append(lists, l)
			}
		}
	}
	return t.unionLocked(lists)
}

// unionLocked is union for lists of t's series; when they cover a large
// part of t.all, whose ids are mostly dense, it marks their ids in a
// bitmap and walks t.all in place of sorting (a regex over every metric
// name of a million series).
func (t *tenant) unionLocked(lists [][]*series) []*series {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	if len(lists) < 2 || n < 1024 || n < len(t.all)/4 {
		return union(lists)
	}
	lo, hi := t.all[0].id, t.all[len(t.all)-1].id
	if hi-lo >= uint64(4*len(t.all)) {
		return union(lists)
	}
	bits := make([]uint64, (hi-lo)/64+1)
	for _, l := range lists {
		for _, s := range l {
			if s.id < lo || s.id > hi { // not in t.all: cannot happen
				return union(lists)
			}
			d := s.id - lo
			bits[d/64] |= 1 << (d % 64)
		}
	}
	out := make([]*series, 0, n)
	for _, s := range t.all {
		if d := s.id - lo; bits[d/64]&(1<<(d%64)) != 0 {
			out = append(out, s)
		}
	}
	return out
}

func sortByID(list []*series) {
	slices.SortFunc(list, func(a, b *series) int { return cmp.Compare(a.id, b.id) })
}

func union(lists [][]*series) []*series {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]*series, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	sortByID(out)
	return slices.Compact(out)
}

func intersect(a, b []*series) []*series {
	out := make([]*series, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].id < b[j].id:
			i++
		case a[i].id > b[j].id:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func subtract(a, b []*series) []*series {
	out := make([]*series, 0, len(a))
	j := 0
	for _, s := range a {
		for j < len(b) && b[j].id < s.id {
			j++
		}
		if j < len(b) && b[j].id == s.id {
			continue
		}
		out = append(out, s)
	}
	return out
}
