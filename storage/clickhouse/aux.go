package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/tenancy"
)

// Exemplars and metadata ("aux" data) ride along with samples: an
// appender checks them at Append against per-tenant caches (the newest
// exemplar of each series, the latest metadata of each family, loaded
// from ClickHouse once per tenant), and Commit inserts what passed through
// a group commit of their own, next to the samples' (both inserts run at
// once; Commit returns when both are in ClickHouse). The aux committer
// batches as the samples' committer does (FlushInterval, BatchSize), so a
// remote-write request a second with exemplars does not become an insert
// a second per request.

// auxStore is the store's exemplar and metadata side.
type auxStore struct {
	s *Store

	tenantsMu sync.Mutex
	tenants   map[tenancy.ID]*auxTenant

	// version is the last metadata row version handed out (nanoseconds
	// of wall clock, strictly increasing).
	version atomic.Uint64

	// inserts counts the batches inserted (tests check the batching).
	inserts atomic.Int64

	in     chan *auxReq
	mu     sync.RWMutex // held shared by submitters, exclusively by close
	stop   bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// auxCleanupInterval is how often the oldest exemplars beyond the bound
// are deleted.
const auxCleanupInterval = 10 * time.Minute

func newAuxStore(s *Store) *auxStore {
	x := &auxStore{s: s, tenants: map[tenancy.ID]*auxTenant{}, in: make(chan *auxReq, 256)}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	x.wg.Add(2)
	go func() {
		defer x.wg.Done()
		x.dispatch()
	}()
	go func() {
		defer x.wg.Done()
		tick := time.NewTicker(auxCleanupInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := x.trimExemplars(ctx, time.Now()); err != nil && ctx.Err() == nil {
					s.logger.Warn("exemplar cleanup failed", slog.Any("err", err))
				}
			}
		}
	}()
	return x
}

// close inserts what is queued and stops the committer and the cleanup.
func (x *auxStore) close() {
	x.mu.Lock()
	if !x.stop {
		x.stop = true
		close(x.in)
	}
	x.mu.Unlock()
	x.cancel()
	x.wg.Wait()
}

func (x *auxStore) tenant(id tenancy.ID) *auxTenant {
	x.tenantsMu.Lock()
	defer x.tenantsMu.Unlock()
	t := x.tenants[id]
	if t == nil {
		t = &auxTenant{id: id}
		x.tenants[id] = t
	}
	return t
}

// nextVersion returns a metadata row version above every earlier one.
func (x *auxStore) nextVersion() uint64 {
	now := uint64(time.Now().UnixNano())
	for {
		last := x.version.Load()
		v := max(now, last+1)
		if x.version.CompareAndSwap(last, v) {
			return v
		}
	}
}

// auxTenant is one tenant's aux caches. Safe for concurrent use.
type auxTenant struct {
	id tenancy.ID

	exLoadMu, mdLoadMu sync.Mutex
	exLoaded, mdLoaded atomic.Bool

	mu sync.RWMutex
	// newest is each series' newest stored exemplar (by fingerprint), at
	// most exemplarCacheCap(limit) of them.
	newest map[uint64]exemplarKey
	// families is the latest stored metadata of each family.
	families map[string]metadata.Metadata
	// warned: the metadata bound was reported.
	warned bool
}

// auxTxn is what one appender's transaction adds to the aux tables.
type auxTxn struct {
	tenant    *auxTenant // the tenant's caches, looked up once
	exemplars []exemplarRow
	newest    map[uint64]exemplarKey       // the transaction's newest exemplar per series
	metadata  map[string]metadata.Metadata // family -> the transaction's latest, where it changes the cache
	unchanged map[string]metadata.Metadata // family -> metadata seen equal to the cache's
}

func (t *auxTxn) empty() bool { return len(t.exemplars) == 0 && len(t.metadata) == 0 }

// appendAux is the AppenderV2 hook: it takes opts' exemplars and metadata
// of the series (fingerprint ref, labels ls) whose sample was appended.
// Refused exemplars come back as a *promstorage.AppendPartialError.
func (a *appender) appendAux(ref promstorage.SeriesRef, ls labels.Labels, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	hasMD := opts.Metadata != (metadata.Metadata{})
	if len(opts.Exemplars) == 0 && !hasMD {
		return ref, nil
	}
	if ls.IsEmpty() {
		return ref, nil // appended by reference alone: the labels rows need are unknown
	}
	t := a.aux.tenant
	if t == nil {
		t = a.ts.s.aux.tenant(a.ts.id)
		a.aux.tenant = t
	}
	if hasMD {
		family := opts.MetricFamilyName
		if family == "" {
			family = ls.Get(labels.MetricName)
		}
		if family != "" {
			if err := t.loadMetadata(a.ctx, a.ts.s); err != nil {
				return ref, err
			}
			a.aux.noteMetadata(t, family, opts.Metadata)
		}
	}
	if len(opts.Exemplars) == 0 {
		return ref, nil
	}
	if err := t.loadExemplars(a.ctx, a.ts.s, exemplarCacheCap(a.ts.s.exemplarLimit(a.ts.id))); err != nil {
		return ref, err
	}
	if errs := a.aux.addExemplars(t, uint64(ref), ls, opts.Exemplars); len(errs) > 0 {
		return ref, &promstorage.AppendPartialError{ExemplarErrors: errs}
	}
	return ref, nil
}

// commitWithAux commits the transaction: the samples through the
// committer and, at the same time, the exemplars and metadata through the
// aux committer. It returns once both are in ClickHouse.
func (a *appender) commitWithAux() error {
	if a.done || a.aux.empty() {
		a.aux = auxTxn{}
		return a.commit()
	}
	x := a.ts.s.aux
	t := a.aux.tenant
	req := &auxReq{tenant: string(a.ts.id), exemplars: a.aux.exemplars, done: make(chan error, 1)}
	undo := a.aux.admitMetadata(t, a.ts.s, req, x.nextVersion)
	newest := a.aux.newest
	a.aux = auxTxn{}
	var auxErr error
	queued := x.submit(a.ctx, req)
	if queued != nil {
		auxErr = queued
	}
	err := a.commit()
	if queued == nil {
		auxErr = req.wait(a.ctx)
	}
	if auxErr != nil {
		undo()
	} else {
		t.storedExemplars(newest, exemplarCacheCap(a.ts.s.exemplarLimit(a.ts.id)))
	}
	return errors.Join(err, auxErr)
}

// auxReq is one transaction's aux rows on their way to ClickHouse.
type auxReq struct {
	tenant    string
	exemplars []exemplarRow
	metadata  []metadataRow
	done      chan error
}

func (r *auxReq) rows() int { return len(r.exemplars) + len(r.metadata) }

// wait returns the insert's result, or ctx's error when it ends first
// (the rows may still be inserted).
func (r *auxReq) wait(ctx context.Context) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit queues r for the aux committer.
func (x *auxStore) submit(ctx context.Context, r *auxReq) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.stop {
		return errClosed
	}
	select {
	case x.in <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dispatch is the aux group commit: whatever is queued goes in one batch
// (up to BatchSize rows), at once after a quiet spell, at most one batch
// per FlushInterval while busy.
func (x *auxStore) dispatch() {
	cfg := x.s.cfg
	var lastSent time.Time
	for {
		first, ok := <-x.in
		if !ok {
			return
		}
		batch, rows := []*auxReq{first}, first.rows()
		timer := time.NewTimer(max(0, cfg.FlushInterval-time.Since(lastSent)))
	collect:
		for rows < cfg.BatchSize {
			select {
			case r, ok := <-x.in:
				if !ok {
					break collect
				}
				batch, rows = append(batch, r), rows+r.rows()
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		lastSent = time.Now()
		x.inserts.Add(1)
		err := x.insert(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// insert writes batch's exemplars and metadata, retrying once when the
// first attempt failed on the connection: the rows are idempotent
// (exemplars are keyed by themselves, metadata by version).
func (x *auxStore) insert(batch []*auxReq) error {
	err := x.insertOnce(batch)
	if err != nil && isConnError(err) {
		err = x.insertOnce(batch)
	}
	if err != nil {
		x.s.recordInsert(err) // successes are the samples' to report
		x.s.metrics.insertErrors.Inc()
		x.s.logger.Warn("exemplar and metadata insert failed", slog.Int("commits", len(batch)), slog.Any("err", err))
		return masked("insert", err)
	}
	return nil
}

func (x *auxStore) insertOnce(batch []*auxReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), x.s.cfg.Timeout)
	defer cancel()
	ctx = x.s.insertContext(ctx)
	if err := x.insertExemplars(ctx, batch); err != nil {
		return fmt.Errorf("insert exemplars: %w", err)
	}
	if err := x.insertMetadata(ctx, batch); err != nil {
		return fmt.Errorf("insert metadata: %w", err)
	}
	return nil
}

// AppendExemplars adds exemplars to a series that already has samples,
// written in this transaction or before (remote write senders put a
// series' exemplars in an entry of their own); for a series the tenant
// does not hold it returns promstorage.ErrNotFound and creates nothing.
func (a appenderV2) AppendExemplars(ref promstorage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (promstorage.SeriesRef, error) {
	if a.done {
		return 0, errors.New("append on a committed or rolled back appender")
	}
	if ls.IsEmpty() || ls.Has(tenancy.Label) {
		return 0, fmt.Errorf("append exemplars of %s: %w", ls, promstorage.ErrNotFound)
	}
	if err := a.ts.state.load(a.ctx, a.ts.s); err != nil {
		return 0, err
	}
	var fp uint64
	fp, a.hashBuf = fingerprint(a.ts.id, ls, a.hashBuf)
	a.ts.state.mu.Lock()
	_, known := a.ts.state.series[fp]
	a.ts.state.mu.Unlock()
	if !known {
		return 0, fmt.Errorf("append exemplars of %s: %w", ls, promstorage.ErrNotFound)
	}
	return a.appendAux(promstorage.SeriesRef(fp), ls, promstorage.AppendV2Options{Exemplars: es})
}

var _ promstorage.ExemplarAppenderV2 = appenderV2{}
