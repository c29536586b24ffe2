package clickhouse

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// ForTenant returns the view of the store scoped to tenant id.
func (s *Store) ForTenant(id tenancy.ID) storage.TenantStore {
	return &tenantStore{s: s, id: id, state: s.tenantState(id)}
}

func (s *Store) tenantState(id tenancy.ID) *tenantState {
	s.tenantsMu.Lock()
	defer s.tenantsMu.Unlock()
	st := s.tenants[id]
	if st == nil {
		st = newTenantState(id)
		s.tenants[id] = st
	}
	return st
}

// tenantStore is one tenant's view of the store.
type tenantStore struct {
	s     *Store
	id    tenancy.ID
	state *tenantState
}

func (ts *tenantStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return appenderV2{ts.newAppender(ctx)}
}

// ExemplarQuerier returns a querier of the tenant's exemplars (exemplars.go).
func (ts *tenantStore) ExemplarQuerier(ctx context.Context) (promstorage.ExemplarQuerier, error) {
	return storage.RetainedExemplars(&exemplarQuerier{ctx: ctx, ts: ts}, ts.s.retentionCutoff(ts.id, time.Now())), nil
}

// Metadata returns the latest metadata of the tenant's metric families
// (metadata.go): of metric only when not empty, at most limit families
// when limit > 0.
func (ts *tenantStore) Metadata(ctx context.Context, metric string, limit int) (map[string]metadata.Metadata, error) {
	return ts.s.readMetadata(ctx, "metadata", ts.id, metric, limit)
}

// Querier and ChunkQuerier hide what the tenant's tombstones delete
// (delete.go).
func (ts *tenantStore) Querier(mint, maxt int64) (promstorage.Querier, error) {
	mint = max(mint, ts.s.retentionCutoff(ts.id, time.Now())) // per-tenant retention
	return &deletedQuerier{q: &querier{ts: ts, mint: mint, maxt: maxt}, ts: ts}, nil
}

func (ts *tenantStore) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	cutoff := ts.s.retentionCutoff(ts.id, time.Now()) // per-tenant retention
	return storage.RetainedChunks(&deletedChunkQuerier{q: &chunkQuerier{querier{ts: ts, mint: max(mint, cutoff), maxt: maxt}}, ts: ts}, cutoff), nil
}
