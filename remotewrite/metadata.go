package remotewrite

import (
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Metric metadata reaches the store on the appends of the series it
// describes (AppenderV2's opts.Metadata, under opts.MetricFamilyName).
//
// Remote write 2.0 carries it on each series. Prometheus' receiver
// passes it with an empty MetricFamilyName, so that its store files it
// under the series' metric name: foo_bucket, foo_sum and foo_count of a
// classic histogram foo each. Luminate instead files it under the metric
// family, as Prometheus' /api/v1/metadata (fed by scrapes) and Mimir
// (fed by remote write 1.0) show it: familyName strips the suffixes the
// family's type gives its series.
//
// Remote write 1.0 sends it apart from the series, keyed by family name,
// and Prometheus sends it in requests of its own, every minute by
// default (metadata_config). Prometheus' receiver drops it; Mimir keeps it
// by family. Luminate attaches each entry to the series of its family in
// the same request; entries whose family has no series in the request
// wait, at most --ingest.max-pending-metadata of them, for the next
// request of the tenant that carries one.

// familyName is the metric family of a series named name whose metadata
// has type typ: name without the suffix of a classic histogram's or a
// summary's series (_bucket, _count, _sum; _gcount, _gsum of a gauge
// histogram) when the series carries floats, not native histograms.
func familyName(name string, typ model.MetricType, nativeHistogram bool) string {
	if nativeHistogram {
		return name
	}
	var suffixes []string
	switch typ {
	case model.MetricTypeHistogram:
		suffixes = []string{"_bucket", "_count", "_sum", "_created"}
	case model.MetricTypeGaugeHistogram:
		suffixes = []string{"_bucket", "_gcount", "_gsum", "_count", "_sum"}
	case model.MetricTypeSummary:
		suffixes = []string{"_count", "_sum", "_created"}
	}
	for _, s := range suffixes {
		if f, ok := strings.CutSuffix(name, s); ok && f != "" {
			return f
		}
	}
	return name
}

// rw1Suffixes are what a remote write 1.0 series name may add to its
// family name, tried in turn when the name itself has no metadata.
var rw1Suffixes = []string{"_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info"}

// seriesMetadata is the metaFunc of remote write 2.0: the series' own
// metadata, under its family name.
func (st *writeState) seriesMetadata(ts *TimeSeries, name string) (metadata.Metadata, string, bool) {
	if ts.Metadata == nil {
		return metadata.Metadata{}, "", false
	}
	m, ok := st.metaMemo[*ts.Metadata]
	if !ok {
		// Stores may keep what they are given: not the decoder's buffer.
		m = metadata.Metadata{Type: ts.Metadata.MetricType(), Help: strings.Clone(ts.Metadata.Help), Unit: strings.Clone(ts.Metadata.Unit)}
		if st.metaMemo == nil {
			st.metaMemo = make(map[Metadata]metadata.Metadata)
		}
		st.metaMemo[*ts.Metadata] = m
	}
	return m, familyName(name, m.Type, len(ts.Histograms) > 0), true
}

// requestMetadata is the remote write 1.0 metadata of one request, and
// what of the tenant's pending metadata it took.
type requestMetadata struct {
	tenant  tenancy.ID
	pending *pendingMetadata
	sent    map[string]Metadata          // the request's, by family, pointing into the decoder's buffer
	taken   map[string]metadata.Metadata // the tenant's pending entries
	used    map[string]metadata.Metadata // converted and attached, by family (keys find's copies)
	byName  map[string]found             // what find answered, by series name (keys find's copies)
}

type found struct {
	m      metadata.Metadata
	family string
	ok     bool
}

// familyMetadata collects the metadata of a 1.0 request of tenant id, and
// takes the tenant's pending metadata for its series.
func (g *Ingester) familyMetadata(id tenancy.ID, sent []Metadata) *requestMetadata {
	m := &requestMetadata{tenant: id, pending: g.pending, used: map[string]metadata.Metadata{}, byName: map[string]found{}}
	if len(sent) > 0 {
		m.sent = make(map[string]Metadata, len(sent))
		for _, e := range sent {
			if e.FamilyName != "" {
				m.sent[e.FamilyName] = e // the latest wins
			}
		}
	}
	m.taken = g.pending.take(id)
	return m
}

// find is the metaFunc of remote write 1.0: the metadata of the series'
// family, the series name itself or it without one of rw1Suffixes.
//
// name lives in the buffer of the series' labels, which the next series
// overwrites (see buildLabels): what the maps keep, and the family name
// returned, is a copy of it, made once per metric name and request.
func (m *requestMetadata) find(_ *TimeSeries, name string) (metadata.Metadata, string, bool) {
	// Series of one metric name come by the hundred: one search each.
	f, ok := m.byName[name]
	if !ok {
		name = strings.Clone(name)
		f = m.search(name)
		m.byName[name] = f
	}
	return f.m, f.family, f.ok
}

// search looks up name, which the caller owns; the family it returns is
// name or a prefix of it.
func (m *requestMetadata) search(name string) found {
	if md, ok := m.lookup(name); ok {
		return found{md, name, true}
	}
	for _, s := range rw1Suffixes {
		if f, ok := strings.CutSuffix(name, s); ok && f != "" {
			if md, ok := m.lookup(f); ok {
				return found{md, f, true}
			}
		}
	}
	return found{}
}

func (m *requestMetadata) lookup(family string) (metadata.Metadata, bool) {
	if md, ok := m.used[family]; ok {
		return md, true
	}
	if e, ok := m.sent[family]; ok {
		md := metadata.Metadata{Type: e.MetricType(), Help: strings.Clone(e.Help), Unit: strings.Clone(e.Unit)}
		m.used[family] = md
		return md, true
	}
	if md, ok := m.taken[family]; ok {
		m.used[family] = md
		return md, true
	}
	return metadata.Metadata{}, false
}

// keepUnused gives the metadata the request's series did not use to the
// tenant's pending metadata, for its next requests.
func (m *requestMetadata) keepUnused() {
	// The pending entries go back as they came, less those used: the
	// same map, in steady state (families that never get a series).
	for family := range m.used {
		delete(m.taken, family)
	}
	var sent map[string]metadata.Metadata
	for family, e := range m.sent {
		if _, ok := m.used[family]; !ok {
			if sent == nil {
				sent = map[string]metadata.Metadata{}
			}
			sent[strings.Clone(family)] = metadata.Metadata{Type: e.MetricType(), Help: strings.Clone(e.Help), Unit: strings.Clone(e.Unit)}
		}
	}
	// What a concurrent request of the tenant put meanwhile is newer
	// than what this one took, older than what it was sent.
	m.pending.put(m.tenant, m.taken, false)
	m.pending.put(m.tenant, sent, true)
}

// pendingMetadata is the remote write 1.0 metadata waiting for a series
// of its family, by tenant: at most max entries in all, and for each
// tenant at most perTenant(id), the most families it may keep anyway
// (its max_metadata), so that no tenant's entries crowd out the others'.
// Safe for concurrent use.
type pendingMetadata struct {
	max       int
	perTenant storage.TenantLimit // nil or 0: only max

	mu       sync.Mutex
	n        int
	byTenant map[tenancy.ID]map[string]metadata.Metadata
}

func newPendingMetadata(max int, perTenant storage.TenantLimit) *pendingMetadata {
	return &pendingMetadata{max: max, perTenant: perTenant, byTenant: map[tenancy.ID]map[string]metadata.Metadata{}}
}

// has says whether tenant id has metadata pending.
func (p *pendingMetadata) has(id tenancy.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byTenant[id]) > 0
}

// take removes and returns the pending metadata of tenant id: a request
// that finds its series uses it, and gives back the rest.
func (p *pendingMetadata) take(id tenancy.ID) map[string]metadata.Metadata {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.byTenant[id]
	delete(p.byTenant, id)
	p.n -= len(m)
	return m
}

// put adds entries to tenant id's pending metadata, as long as there is
// room, replacing those of the same family when replace is set. It may
// keep entries itself: the caller must not use it after.
func (p *pendingMetadata) put(id tenancy.ID, entries map[string]metadata.Metadata, replace bool) {
	if len(entries) == 0 {
		return
	}
	mine := p.max
	if p.perTenant != nil {
		if n := p.perTenant(id); n > 0 {
			mine = min(mine, n)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.byTenant[id]
	if m == nil && p.n+len(entries) <= p.max && len(entries) <= mine {
		p.byTenant[id] = entries // adopted: the caller gives it up
		p.n += len(entries)
		return
	}
	if m == nil {
		m = make(map[string]metadata.Metadata, len(entries))
		p.byTenant[id] = m
	}
	for family, md := range entries {
		if _, ok := m[family]; ok {
			if replace {
				m[family] = md
			}
			continue
		}
		if p.n >= p.max || len(m) >= mine {
			continue
		}
		p.n++
		m[family] = md
	}
	if len(m) == 0 {
		delete(p.byTenant, id)
	}
}
