package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// errClosed is returned by commits after Close.
var errClosed = errors.New("clickhouse store is closed")

// commitReq is one appender's transaction on its way to ClickHouse.
type commitReq struct {
	tenant string
	fps    []uint64
	tss    []int64
	vals   []float64
	digits []int64 // with decimal columns, else nil
	scales []int8
	hists  []string // encoded histograms, "" for floats; nil when all are floats
	sts    []int64  // start timestamps, 0 when unknown; nil when all are
	series []seriesRow
	done   chan error // receives the insert's result once
	// released is set by commit when the committer no longer reads the
	// request (it was never queued, or its insert is over), so its
	// slices may be reused.
	released bool
}

// committer is the group commit: appenders' Commit calls queue their rows,
// a dispatcher merges whatever is queued into one batch (up to BatchSize
// rows, waiting at most FlushInterval for company), and insert workers
// send each batch to ClickHouse as two column inserts, series rows first.
// Each Commit returns once the insert holding its rows has succeeded or
// failed. Rows keep their commit order inside a batch, and a batch's
// commits were all waiting at once, so the row inserted last is the one
// written last: what ReplacingMergeTree keeps.
type committer struct {
	s      *Store
	in     chan *commitReq
	closed chan struct{}
	mu     sync.RWMutex // held shared by submitters, exclusively by close
	stop   bool
	wg     sync.WaitGroup
}

func newCommitter(s *Store) *committer {
	c := &committer{s: s, in: make(chan *commitReq), closed: make(chan struct{})}
	batches := make(chan []*commitReq)
	c.wg.Add(1 + s.cfg.InsertConcurrency)
	go func() {
		defer c.wg.Done()
		c.dispatch(batches)
	}()
	for range s.cfg.InsertConcurrency {
		go func() {
			defer c.wg.Done()
			w := &insertWorker{s: s}
			for batch := range batches {
				err := w.insert(batch)
				for _, r := range batch {
					r.done <- err
				}
			}
		}()
	}
	return c
}

// commit queues r and waits for its insert. It returns early with ctx's
// error when ctx ends first; the rows may still be inserted.
func (c *committer) commit(ctx context.Context, r *commitReq) error {
	c.mu.RLock()
	if c.stop {
		c.mu.RUnlock()
		r.released = true
		return errClosed
	}
	select {
	case c.in <- r:
	case <-ctx.Done():
		c.mu.RUnlock()
		r.released = true
		return ctx.Err()
	}
	c.mu.RUnlock()
	select {
	case err := <-r.done:
		r.released = true
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting commits, inserts everything queued and waits for
// the workers.
func (c *committer) close() {
	c.mu.Lock()
	if !c.stop {
		c.stop = true
		close(c.in)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *committer) dispatch(batches chan<- []*commitReq) {
	defer close(batches)
	var (
		pending  []*commitReq
		rows     int
		lastSent time.Time
		timer    = time.NewTimer(time.Hour)
		timerOn  bool
		in       = c.in
	)
	timer.Stop()
	batchSize, interval := c.s.cfg.BatchSize, c.s.cfg.FlushInterval
	for {
		if in == nil && len(pending) == 0 {
			return
		}
		// A batch goes when full, when closing, or when FlushInterval has
		// passed since the previous one went: a commit after a quiet spell
		// goes at once, busy periods are paced into large inserts.
		var out chan<- []*commitReq
		if len(pending) > 0 {
			wait := interval - time.Since(lastSent)
			switch {
			case rows >= batchSize || in == nil || wait <= 0:
				out = batches
			case !timerOn:
				timer.Reset(wait)
				timerOn = true
			}
		}
		recv := in
		if rows >= batchSize {
			recv = nil // full: stop taking more until it is sent
		}
		select {
		case r, ok := <-recv:
			if !ok {
				in = nil
				continue
			}
			pending = append(pending, r)
			rows += len(r.fps)
		case <-timer.C:
			timerOn = false
		case out <- pending:
			pending, rows, lastSent = nil, 0, time.Now()
		}
	}
}

// insertWorker builds and sends column batches; its buffers are reused
// from one batch to the next.
type insertWorker struct {
	s *Store
	// The batch's tenants, values as committed, its rows in table order,
	// and the rows to insert.
	ranks    map[string]int32
	names    []string
	inVals   []float64
	inDigits []int64
	inScales []int8
	inHists  []string
	inSTs    []int64
	keys     []rowKey
	tenants  []*string
	fps      []uint64
	tss      []int64
	vals     []float64
	digits   []int64
	scales   []int8
	hists    []string // nil when the batch has no histogram
	sts      []int64  // nil when the batch has no start timestamp
}

// insert writes batch, retrying once when the first attempt failed on the
// connection (a pooled connection to a restarted server): inserts are
// idempotent, ReplacingMergeTree folds a repeated row into one.
func (w *insertWorker) insert(batch []*commitReq) error {
	start := time.Now()
	err := w.insertOnce(batch)
	if err != nil && isConnError(err) {
		err = w.insertOnce(batch)
	}
	m := w.s.metrics
	m.insertDuration.Observe(time.Since(start).Seconds())
	m.commitsPerInsert.Observe(float64(len(batch)))
	w.s.recordInsert(err)
	if err != nil {
		m.insertErrors.Inc()
		w.s.logger.Warn("insert failed", slog.Int("commits", len(batch)), slog.Any("err", err))
		return masked("insert", err)
	}
	return nil
}

func (w *insertWorker) insertOnce(batch []*commitReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.s.cfg.Timeout)
	defer cancel()
	ctx = w.s.insertContext(ctx)
	if err := w.insertSeries(ctx, batch); err != nil {
		return err
	}
	return w.insertSamples(ctx, batch)
}

func (w *insertWorker) insertSeries(ctx context.Context, batch []*commitReq) error {
	n := 0
	for _, r := range batch {
		n += len(r.series)
	}
	if n == 0 {
		return nil
	}
	var (
		tenants = make([]string, 0, n)
		hours   = make([]int32, 0, n)
		minTs   = make([]int64, 0, n)
		fps     = make([]uint64, 0, n)
		names   = make([]string, 0, n)
	)
	for _, r := range batch {
		for _, sr := range r.series {
			tenants = append(tenants, r.tenant)
			hours = append(hours, sr.hour)
			minTs = append(minTs, sr.minTs)
			fps = append(fps, sr.fp)
			names = append(names, sr.name)
		}
	}
	b, err := w.s.conn.PrepareBatch(ctx, "INSERT INTO "+w.s.schema.table(seriesTable)+" (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values)")
	if err != nil {
		return err
	}
	if err := appendColumns(b, tenants, hours, minTs, fps, names); err != nil {
		_ = b.Abort()
		return err
	}
	// The label arrays row by row, each a []string: the driver appends a
	// whole [][]string column through reflection, element by element, and
	// a []string row without. Series creation end to end (16 senders,
	// 100k new series): Luminate's CPU 5.4-5.6 s per million samples, was
	// 6.5-6.7.
	lnames, lvalues := b.Column(5), b.Column(6)
	for _, r := range batch {
		for _, sr := range r.series {
			if err := lnames.AppendRow(sr.names); err != nil {
				_ = b.Abort()
				return fmt.Errorf("column label_names: %w", err)
			}
			if err := lvalues.AppendRow(sr.values); err != nil {
				_ = b.Abort()
				return fmt.Errorf("column label_values: %w", err)
			}
		}
	}
	if err := b.Send(); err != nil {
		return err
	}
	w.s.metrics.insertedRows.WithLabelValues(seriesTable).Add(float64(n))
	return nil
}

func (w *insertWorker) insertSamples(ctx context.Context, batch []*commitReq) error {
	w.sortBatch(batch, w.s.schema.decimals)
	// A batch of floats only does not send the hist column (it defaults
	// to ""): float inserts are as they were before histograms.
	columns := w.s.schema.samplesColumns()
	if w.hists != nil {
		columns += ", " + histColumn
	}
	// Nor st when no sample of the batch has one (it defaults to 0).
	if w.sts != nil {
		columns += ", " + stColumn
	}
	b, err := w.s.conn.PrepareBatch(ctx, "INSERT INTO "+w.s.schema.table(samplesTable)+" ("+columns+")")
	if err != nil {
		return err
	}
	// The tenant column row by row, as a pointer to one string per commit:
	// the driver boxes a string (one allocation per row) but not a pointer,
	// and its LowCardinality dictionary keys on the pointer.
	tenants := b.Column(0)
	for _, p := range w.tenants {
		if err := tenants.AppendRow(p); err != nil {
			_ = b.Abort()
			return fmt.Errorf("column tenant: %w", err)
		}
	}
	cols := []any{nil, w.fps, w.tss, w.vals}
	if w.s.schema.decimals {
		cols = append(cols, w.digits, w.scales)
	}
	if w.hists != nil {
		cols = append(cols, w.hists)
	}
	if w.sts != nil {
		if w.s.schema.stBytes {
			cols = append(cols, w.stStrings())
		} else {
			cols = append(cols, w.sts)
		}
	}
	if err := appendColumns(b, cols...); err != nil {
		_ = b.Abort()
		return err
	}
	if err := b.Send(); err != nil {
		return err
	}
	w.s.metrics.insertedRows.WithLabelValues(samplesTable).Add(float64(len(w.fps)))
	return nil
}

// sortBatch fills the worker's columns with batch's rows sorted by
// (tenant, fingerprint, ts), keeping of rows at one (tenant, fingerprint,
// ts) only the one written last (later commit, or later append in one
// commit). Every inserted part so holds one row per key, so a read can
// resolve last-write-wins between parts by their order alone, and
// ClickHouse receives the block already in table order. With decimals
// the digits and scale columns are sorted too, and so is the hist column
// when a commit of the batch has histograms, and the st column when one
// has start timestamps. Floats and histograms share the key: of a float
// and a histogram at one time the later write is kept, as of two floats,
// with its start timestamp.
func (w *insertWorker) sortBatch(batch []*commitReq, decimals bool) {
	// Tenants by rank of name, so that rows compare by integers alone.
	clear(w.ranks)
	if w.ranks == nil {
		w.ranks = map[string]int32{}
	}
	w.names = w.names[:0]
	for _, r := range batch {
		if _, ok := w.ranks[r.tenant]; !ok {
			w.ranks[r.tenant] = 0
			w.names = append(w.names, r.tenant)
		}
	}
	slices.Sort(w.names)
	for i, name := range w.names {
		w.ranks[name] = int32(i)
	}
	w.keys = w.keys[:0]
	w.inVals, w.inDigits, w.inScales = w.inVals[:0], w.inDigits[:0], w.inScales[:0]
	clear(w.inHists)
	w.inHists = w.inHists[:0]
	hists, sts := false, false
	for _, r := range batch {
		hists = hists || r.hists != nil
		sts = sts || r.sts != nil
	}
	w.inSTs = w.inSTs[:0]
	for _, r := range batch {
		rank := w.ranks[r.tenant]
		base := int32(len(w.keys))
		for i, fp := range r.fps {
			w.keys = append(w.keys, rowKey{fp: fp, ts: r.tss[i], tenant: rank, row: base + int32(i)})
		}
		w.inVals = append(w.inVals, r.vals...)
		w.inDigits = append(w.inDigits, r.digits...)
		w.inScales = append(w.inScales, r.scales...)
		if hists {
			if r.hists != nil {
				w.inHists = append(w.inHists, r.hists...)
			} else {
				w.inHists = append(w.inHists, make([]string, len(r.fps))...)
			}
		}
		if sts {
			if r.sts != nil {
				w.inSTs = append(w.inSTs, r.sts...)
			} else {
				w.inSTs = append(w.inSTs, make([]int64, len(r.fps))...)
			}
		}
	}
	slices.SortFunc(w.keys, compareRowKeys)
	w.tenants, w.fps, w.tss, w.vals = w.tenants[:0], w.fps[:0], w.tss[:0], w.vals[:0]
	w.digits, w.scales = w.digits[:0], w.scales[:0]
	clear(w.hists)
	w.hists = nil
	if hists {
		w.hists = make([]string, 0, len(w.keys))
	}
	w.sts = nil
	if sts {
		w.sts = make([]int64, 0, len(w.keys))
	}
	for k, key := range w.keys {
		if k+1 < len(w.keys) {
			next := w.keys[k+1]
			if next.fp == key.fp && next.ts == key.ts && next.tenant == key.tenant {
				continue // a later write of the same sample follows
			}
		}
		w.tenants = append(w.tenants, &w.names[key.tenant])
		w.fps = append(w.fps, key.fp)
		w.tss = append(w.tss, key.ts)
		w.vals = append(w.vals, w.inVals[key.row])
		if decimals {
			w.digits = append(w.digits, w.inDigits[key.row])
			w.scales = append(w.scales, w.inScales[key.row])
		}
		if hists {
			w.hists = append(w.hists, w.inHists[key.row])
		}
		if sts {
			w.sts = append(w.sts, w.inSTs[key.row])
		}
	}
}

// stStrings is the batch's start timestamps as a String st column holds
// them (schema_st.go).
func (w *insertWorker) stStrings() []string {
	out := make([]string, len(w.sts))
	for i, st := range w.sts {
		if st != 0 {
			out[i] = stBytesOf(st)
		}
	}
	return out
}

// rowKey is a row of a batch as sortBatch orders it.
type rowKey struct {
	fp     uint64
	ts     int64
	tenant int32 // rank of the row's tenant by name in the batch
	row    int32 // position in the batch: of equal keys the later write is larger
}

func compareRowKeys(a, b rowKey) int {
	if a.tenant != b.tenant {
		return cmp.Compare(a.tenant, b.tenant)
	}
	if a.fp != b.fp {
		return cmp.Compare(a.fp, b.fp)
	}
	if a.ts != b.ts {
		return cmp.Compare(a.ts, b.ts)
	}
	return cmp.Compare(a.row, b.row)
}

// appendColumns appends one whole column per argument to b.
func appendColumns(b driver.Batch, cols ...any) error {
	for i, col := range cols {
		if col == nil {
			continue // appended by the caller
		}
		if err := b.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// insertContext adds the settings every insert needs: in cluster mode an
// insert into a Distributed table is acknowledged only once every shard
// has its rows.
func (s *Store) insertContext(ctx context.Context) context.Context {
	if s.schema.cluster == "" {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
}
