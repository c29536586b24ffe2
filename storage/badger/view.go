package badger

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// tenantStore is the tenant-scoped view handed out by Store.ForTenant.
type tenantStore struct {
	st *Store
	id tenancy.ID
}

func (v *tenantStore) AppenderV2(context.Context) promstorage.AppenderV2 {
	return appenderV2{v.st.newAppender(v.id)}
}

func (v *tenantStore) Querier(mint, maxt int64) (promstorage.Querier, error) {
	q, err := v.newQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return v.withoutDeleted(q), nil // delete.go
}

func (v *tenantStore) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	q, err := v.newQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return storage.RetainedChunks(v.chunksWithoutDeleted(q), v.st.retentionCutoff(v.id, time.Now())), nil // delete.go
}

func (v *tenantStore) newQuerier(mint, maxt int64) (*querier, error) {
	if v.st.closed.Load() {
		return nil, storage.ErrUnavailable
	}
	t, err := v.st.tenantFor(v.id, false)
	if err != nil {
		return nil, err
	}
	mint = max(mint, v.st.retentionCutoff(v.id, time.Now())) // per-tenant retention
	if mint > maxt {
		t = nil // wholly past the retention: nothing to read
	}
	return &querier{st: v.st, t: t, mint: mint, maxt: maxt}, nil
}

// ExemplarQuerier returns a querier of the tenant's exemplars (exemplars.go).
func (v *tenantStore) ExemplarQuerier(ctx context.Context) (promstorage.ExemplarQuerier, error) {
	q, err := v.exemplarQuerier(ctx)
	if err != nil {
		return nil, err
	}
	return storage.RetainedExemplars(q, v.st.retentionCutoff(v.id, time.Now())), nil
}

// Metadata returns the tenant's metric metadata (metadata.go).
func (v *tenantStore) Metadata(ctx context.Context, metric string, limit int) (map[string]metadata.Metadata, error) {
	return v.metadata(ctx, metric, limit)
}

// ForTenant returns the view of the store scoped to id.
func (s *Store) ForTenant(id tenancy.ID) storage.TenantStore {
	return &tenantStore{st: s, id: id}
}
