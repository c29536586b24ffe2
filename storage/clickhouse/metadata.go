package clickhouse

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/luminate-io/luminate/tenancy"
)

// Metadata is kept per tenant and metric family, latest wins: a row per
// change, versioned, in a ReplacingMergeTree(version) read with argMax.
// Remote write 2.0 sends a series' metadata with every sample, so the
// tenant's latest metadata of every family is cached (loaded once from the
// table) and a write inserts a row only when it changes a family: in the
// steady state writes insert nothing. The cache also holds the tenant's
// families for the bound (Config.MetadataLimits): the metadata of a new
// family beyond it is dropped, its samples kept.

// maxMetadataLoad bounds the families of one tenant read into the cache
// when there is no bound.
const maxMetadataLoad = 1_000_000

// metadataRow is one row of the metadata table to insert.
type metadataRow struct {
	family  string
	md      metadata.Metadata
	version uint64
}

// metadataLimit is the tenant's metadata bound, 0 for none.
func (s *Store) metadataLimit(id tenancy.ID) int {
	if f := s.cfg.MetadataLimits; f != nil {
		return max(f(id), 0)
	}
	return 0
}

// noteMetadata records md as the transaction's latest metadata of family
// when it changes what the tenant has stored. family may live in reused
// memory: it is copied when kept.
func (t *auxTxn) noteMetadata(tenant *auxTenant, family string, md metadata.Metadata) {
	if cur, ok := t.metadata[family]; ok {
		if cur != md {
			t.metadata[family] = md
		}
		return
	}
	if cur, ok := t.unchanged[family]; ok && cur == md {
		return // the common case: a request's series repeat their families
	}
	tenant.mu.RLock()
	stored, ok := tenant.families[family]
	tenant.mu.RUnlock()
	family = strings.Clone(family)
	if ok && stored == md {
		if t.unchanged == nil {
			t.unchanged = map[string]metadata.Metadata{}
		}
		t.unchanged[family] = md
		return
	}
	if t.metadata == nil {
		t.metadata = map[string]metadata.Metadata{}
	}
	t.metadata[family] = md
}

// admitMetadata moves the transaction's metadata into req: changes of
// known families, and new families while the tenant is under its bound.
// The cache takes them at once (a concurrent write of the same metadata
// then inserts nothing); undo restores it when the insert fails.
func (t *auxTxn) admitMetadata(tenant *auxTenant, s *Store, req *auxReq, version func() uint64) (undo func()) {
	if len(t.metadata) == 0 {
		return func() {}
	}
	limit := s.metadataLimit(tenant.id)
	type prev struct {
		md    metadata.Metadata
		known bool
	}
	prevs := map[string]prev{}
	dropped := 0
	tenant.mu.Lock()
	if tenant.families == nil {
		tenant.families = map[string]metadata.Metadata{}
	}
	for family, md := range t.metadata {
		cur, known := tenant.families[family]
		switch {
		case known && cur == md:
			continue
		case !known && limit > 0 && len(tenant.families) >= limit:
			dropped++
			continue
		}
		prevs[family] = prev{cur, known}
		tenant.families[family] = md
		req.metadata = append(req.metadata, metadataRow{family: family, md: md, version: version()})
	}
	warn := dropped > 0 && !tenant.warned
	if warn {
		tenant.warned = true
	}
	tenant.mu.Unlock()
	if warn {
		s.logger.Warn("metadata of new metric families dropped: the tenant is at its metadata limit "+tenancy.PerTenant("--limits.max-metadata", "max_metadata").Raise(),
			slog.String("tenant", string(tenant.id)), slog.Int("limit", limit))
	}
	return func() {
		tenant.mu.Lock()
		defer tenant.mu.Unlock()
		for family, p := range prevs {
			if p.known {
				tenant.families[family] = p.md
			} else {
				delete(tenant.families, family)
			}
		}
	}
}

// loadMetadata fills the tenant's metadata cache from the table once.
func (t *auxTenant) loadMetadata(ctx context.Context, s *Store) error {
	if t.mdLoaded.Load() {
		return nil
	}
	t.mdLoadMu.Lock()
	defer t.mdLoadMu.Unlock()
	if t.mdLoaded.Load() {
		return nil
	}
	loaded, err := s.readMetadata(ctx, "load_metadata", t.id, "", maxMetadataLoad)
	if err != nil {
		return err
	}
	t.mu.Lock()
	for family, md := range t.families { // committed while loading
		loaded[family] = md
	}
	t.families = loaded
	t.mu.Unlock()
	t.mdLoaded.Store(true)
	return nil
}

// readMetadata reads the latest metadata of the tenant's families (of
// family only when not empty), at most limit of them when limit > 0.
func (s *Store) readMetadata(ctx context.Context, kind string, id tenancy.ID, family string, limit int) (map[string]metadata.Metadata, error) {
	where := "tenant = " + quote(string(id))
	if family != "" {
		where += " AND family = " + quote(family)
	}
	q := fmt.Sprintf("SELECT family, argMax(metric_type, version), argMax(unit, version), argMax(help, version) FROM %s WHERE %s GROUP BY family ORDER BY family",
		s.schema.table(metadataTable), where)
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := s.query(ctx, kind, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]metadata.Metadata{}
	for rows.Next() {
		var name, typ, unit, help string
		if err := rows.Scan(&name, &typ, &unit, &help); err != nil {
			return nil, s.readFailed(kind, fmt.Errorf("read metadata: %w", err))
		}
		out[name] = metadata.Metadata{Type: model.MetricType(typ), Unit: unit, Help: help}
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed(kind, fmt.Errorf("read metadata: %w", err))
	}
	return out, nil
}

// insertMetadata inserts the batch's metadata rows.
func (x *auxStore) insertMetadata(ctx context.Context, batch []*auxReq) error {
	n := 0
	for _, r := range batch {
		n += len(r.metadata)
	}
	if n == 0 {
		return nil
	}
	b, err := x.s.conn.PrepareBatch(ctx, "INSERT INTO "+x.s.schema.table(metadataTable)+" (tenant, family, metric_type, unit, help, version)")
	if err != nil {
		return err
	}
	for _, r := range batch {
		for _, m := range r.metadata {
			if err := b.Append(r.tenant, m.family, string(m.md.Type), m.md.Unit, m.md.Help, m.version); err != nil {
				_ = b.Abort()
				return err
			}
		}
	}
	if err := b.Send(); err != nil {
		return err
	}
	x.s.metrics.insertedRows.WithLabelValues(metadataTable).Add(float64(n))
	return nil
}
