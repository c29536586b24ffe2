package badger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unique"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/luminate-io/luminate/storage"
)

// Metric metadata is kept per tenant and metric family, the latest
// written winning, for at most the tenant's metadata bound of families:
// metadata of a new family beyond it is dropped (its samples are kept),
// while the families already held go on being updated. It is durable in
// the exemplar log (see auxlog.go).

// setMetadataLocked stores m as the family's metadata unless the family
// is new and the tenant holds limit families already (0: unlimited). It
// reports whether m was stored. Callers hold t.mu.
func (t *auxTenant) setMetadataLocked(family string, m metadata.Metadata, limit int) bool {
	if _, ok := t.meta[family]; !ok && limit > 0 && len(t.meta) >= limit {
		return false
	}
	t.meta[family] = m
	return true
}

// metadataState returns the family's metadata the tenant holds, and
// whether it holds any (ok) or would take it (room: the family is known,
// or there is room for it).
func (t *auxTenant) metadataState(family string, limit int) (old metadata.Metadata, ok, room bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	old, ok = t.meta[family]
	return old, ok, ok || limit <= 0 || len(t.meta) < limit
}

// queueMetadata queues m as family's metadata when it differs from what
// the store holds. Remote write 2.0 repeats every series' metadata in
// every request: a family the appender has seen already costs one map
// lookup, one it has not a read-locked lookup in the store.
func (a *appender) queueMetadata(family string, m metadata.Metadata) {
	if family == "" {
		return
	}
	if i, ok := a.aux.metaIdx[family]; ok {
		pm := &a.aux.meta[i]
		if pm.m.Equals(m) {
			return
		}
		pm.m = cloneMetadata(m)
		pm.changed = true
		return
	}
	var old metadata.Metadata
	ok, room := false, true
	if t := a.st.aux.tenant(a.id, false); t != nil {
		old, ok, room = t.metadataState(family, a.st.aux.metadataLimit(a.id))
	}
	pm := pendingMeta{m: old} // unchanged: the store's copy, no clone
	if !ok || !old.Equals(m) {
		pm.m, pm.changed = cloneMetadata(m), room
	}
	if !room {
		a.st.aux.metaDropped.Add(1)
	}
	if a.aux.metaIdx == nil {
		a.aux.metaIdx = map[string]int{}
	}
	// The caller's bytes live for the call only; family names repeat in
	// every request, so they are interned rather than copied.
	pm.family = unique.Make(family).Value()
	a.aux.metaIdx[pm.family] = len(a.aux.meta)
	a.aux.meta = append(a.aux.meta, pm)
}

func cloneMetadata(m metadata.Metadata) metadata.Metadata {
	return metadata.Metadata{Type: model.MetricType(strings.Clone(string(m.Type))), Unit: strings.Clone(m.Unit), Help: strings.Clone(m.Help)}
}

// metadata returns the tenant's latest metadata per family: of family
// metric only when it is set, of at most limit families (the first by
// name) when limit > 0.
func (v *tenantStore) metadata(_ context.Context, metric string, limit int) (map[string]metadata.Metadata, error) {
	if v.st.closed.Load() {
		return nil, fmt.Errorf("%w: store closed", storage.ErrUnavailable)
	}
	out := map[string]metadata.Metadata{}
	t := v.st.aux.tenant(v.id, false)
	if t == nil {
		return out, nil
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if metric != "" {
		if m, ok := t.meta[metric]; ok {
			out[metric] = m
		}
		return out, nil
	}
	if limit <= 0 || len(t.meta) <= limit {
		maps.Copy(out, t.meta)
		return out, nil
	}
	names := slices.Sorted(maps.Keys(t.meta))
	for _, n := range names[:limit] {
		out[n] = t.meta[n]
	}
	return out, nil
}
