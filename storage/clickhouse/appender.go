package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// appender collects one transaction's samples in columns and hands them to
// the group committer on Commit. Not safe for concurrent use.
type appender struct {
	ts  *tenantStore
	ctx context.Context

	// The transaction's samples, from the store's pool (nil before the
	// first), given back once the committer is done with them.
	cols     *sampleColumns
	decimals bool
	// series are rows for the series table this transaction adds: a series
	// new to the cache, or seen in an hour it has no row for yet.
	series  []seriesRow
	queued  map[seriesHour]int // index into series
	created []uint64           // series this transaction added to the cache

	// The series of the previous Append, to skip hashing and the cache when
	// the caller appends several samples of one series in a row.
	lastRef   uint64
	lastEntry *seriesEntry
	lastHour  int32
	lastMinTs int64 // samples of lastRef in lastHour from here on need no row
	hashBuf   []byte
	histBuf   []byte // a histogram's encoding before it is copied to a string
	nowHour   int32  // wall-clock hour of the transaction
	done      bool
	aux       auxTxn // exemplars and metadata (aux.go)
}

type seriesHour struct {
	fp   uint64
	hour int32
}

func (ts *tenantStore) newAppender(ctx context.Context) *appender {
	return &appender{ts: ts, ctx: ctx, decimals: ts.s.schema.decimals, lastHour: noHour, nowHour: hourOf(time.Now().UnixMilli())}
}

// appendAny adds one integer (h) or float (fh) histogram sample, or a
// float sample when both are nil, with its start timestamp st (0:
// unknown). A histogram is validated as Prometheus' head does, then stored
// as its encoding (histcodec.go).
func (a *appender) appendAny(ref promstorage.SeriesRef, lset labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) (promstorage.SeriesRef, error) {
	switch {
	case h != nil:
		if err := h.Validate(); err != nil {
			return 0, fmt.Errorf("append histogram of %s at %d: %w", lset, t, err)
		}
		a.histBuf = appendHistogram(a.histBuf[:0], h)
	case fh != nil:
		if err := fh.Validate(); err != nil {
			return 0, fmt.Errorf("append float histogram of %s at %d: %w", lset, t, err)
		}
		a.histBuf = appendFloatHistogram(a.histBuf[:0], fh)
	default:
		return a.append(ref, lset, st, t, v, "")
	}
	return a.append(ref, lset, st, t, math.Float64frombits(histMarker), string(a.histBuf))
}

// append adds one sample: a float, or with hist an encoded histogram.
func (a *appender) append(ref promstorage.SeriesRef, lset labels.Labels, st, t int64, v float64, hist string) (promstorage.SeriesRef, error) {
	if a.done {
		return 0, errors.New("append on a committed or rolled back appender")
	}
	h := hourOf(t)
	if ref != 0 && uint64(ref) == a.lastRef && h == a.lastHour && t >= a.lastMinTs {
		a.add(a.lastEntry, a.lastRef, st, t, v, hist)
		return ref, nil
	}
	if ref != 0 && a.appendByRef(uint64(ref), h, st, t, v, hist) {
		return ref, nil
	}
	if lset.IsEmpty() {
		return 0, errors.New("append: empty label set")
	}
	if lset.Has(tenancy.Label) {
		return 0, fmt.Errorf("%w: series %s", storage.ErrTenantLabel, lset)
	}
	if err := a.ts.state.load(a.ctx, a.ts.s); err != nil {
		return 0, err
	}
	var fp uint64
	fp, a.hashBuf = fingerprint(a.ts.id, lset, a.hashBuf)
	e, minTs, err := a.ensureSeries(fp, h, t, lset)
	if err != nil {
		return 0, err
	}
	a.lastRef, a.lastEntry, a.lastHour, a.lastMinTs = fp, e, h, minTs
	a.add(e, fp, st, t, v, hist)
	return promstorage.SeriesRef(fp), nil
}

// appendByRef appends to the series ref names (a fingerprint this store
// returned for the caller's label set) when the cache knows it and it
// needs no new series row; it reports whether it did.
func (a *appender) appendByRef(fp uint64, h int32, st, t int64, v float64, hist string) bool {
	state := a.ts.state
	state.mu.Lock()
	e := state.series[fp]
	var minTs int64
	ok := false
	if e != nil {
		if minTs, ok = e.covers(h, t); ok {
			e.seen = a.nowHour
		}
	}
	state.mu.Unlock()
	if !ok {
		return false
	}
	a.lastRef, a.lastEntry, a.lastHour, a.lastMinTs = fp, e, h, minTs
	a.add(e, fp, st, t, v, hist)
	return true
}

// add appends one sample of the series e (fingerprint fp) with its start
// timestamp st; hist is the encoding of a histogram sample (v then holds
// histMarker), "" for a float.
func (a *appender) add(e *seriesEntry, fp uint64, st, t int64, v float64, hist string) {
	c := a.cols
	if c == nil {
		c = a.ts.s.columnPool.Get().(*sampleColumns)
		a.cols = c
	}
	if st != 0 || c.hasSTs {
		c.addST(st)
	}
	if hist != "" || c.hasHists {
		if !c.hasHists {
			// The transaction's first histogram: floats so far get "".
			c.hasHists = true
			c.hists = append(c.hists[:0], make([]string, len(c.fps))...)
		}
		c.hists = append(c.hists, hist)
	}
	c.fps = append(c.fps, fp)
	c.tss = append(c.tss, t)
	if hist != "" {
		if a.decimals {
			c.digits = append(c.digits, 0)
			c.scales = append(c.scales, rawScale)
		}
		c.vals = append(c.vals, v)
		return
	}
	if a.decimals {
		// With decimal columns (decimal.go): each value as digits and
		// scale, vals holding 0 for the exact ones.
		hint := int8(e.scale.Load())
		digits, scale, ok := decimalOf(v, hint)
		if ok {
			v = 0
			if scale > hint {
				e.scale.Store(int32(scale))
			}
		}
		c.digits = append(c.digits, digits)
		c.scales = append(c.scales, scale)
	}
	c.vals = append(c.vals, v)
}

// sampleColumns are one transaction's samples, column by column; digits
// and scales only with decimal columns, hists only once the transaction
// has a histogram (then one per row, "" for floats), sts only once it has
// a start timestamp (then one per row, 0 where unknown). Pooled by the store:
// remote-write requests come by the thousand per second, each with
// thousands of samples.
type sampleColumns struct {
	fps      []uint64
	tss      []int64
	vals     []float64
	digits   []int64
	scales   []int8
	hists    []string
	hasHists bool
	sts      []int64
	hasSTs   bool
}

// addST adds the start timestamp of the row being added (before its fps).
func (c *sampleColumns) addST(st int64) {
	if !c.hasSTs {
		// The transaction's first start timestamp: rows so far get 0.
		c.hasSTs = true
		c.sts = append(c.sts[:0], make([]int64, len(c.fps))...)
	}
	c.sts = append(c.sts, st)
}

func (c *sampleColumns) reset() {
	c.fps, c.tss, c.vals, c.digits, c.scales = c.fps[:0], c.tss[:0], c.vals[:0], c.digits[:0], c.scales[:0]
	clear(c.hists) // drop the strings
	c.hists, c.hasHists = c.hists[:0], false
	c.sts, c.hasSTs = c.sts[:0], false
}

// releaseColumns gives the transaction's columns back to the pool.
func (a *appender) releaseColumns() {
	if a.cols != nil {
		a.cols.reset()
		a.ts.s.columnPool.Put(a.cols)
		a.cols = nil
	}
}

// ensureSeries makes sure the series fp has, or gets with this
// transaction, a row in the series table for hour h whose min_ts is at or
// before t, refusing a new series when the tenant is at its series limit.
// It returns that min_ts.
func (a *appender) ensureSeries(fp uint64, h int32, t int64, lset labels.Labels) (*seriesEntry, int64, error) {
	st := a.ts.state
	st.mu.Lock()
	e := st.series[fp]
	if e == nil {
		// Only a series that will be active counts (active.go): backfilled
		// history is no new active series.
		active := t >= storage.ActiveSince(time.Now(), a.ts.s.cfg.ActiveSeriesWindow)
		if limits := a.ts.s.cfg.SeriesLimits; limits != nil && active {
			if limit := limits(a.ts.id); limit > 0 {
				if n := int(st.active.forLimit(a.ts.s, st)); n >= limit { // tenant-wide (active.go)
					st.mu.Unlock()
					return nil, 0, storage.SeriesLimitError(a.ts.id, n, limit, lset.String())
				}
			}
		}
		e = newSeriesEntry()
		st.series[fp] = e
		if active {
			st.active.created.Add(1)
		}
		a.created = append(a.created, fp)
	}
	e.seen = a.nowHour
	minTs, covered := e.covers(h, t)
	st.mu.Unlock()
	if covered {
		return e, minTs, nil
	}
	k := seriesHour{fp, h}
	if i, ok := a.queued[k]; ok {
		a.series[i].minTs = min(a.series[i].minTs, t)
		return e, a.series[i].minTs, nil
	}
	if a.queued == nil {
		a.queued = map[seriesHour]int{}
	}
	a.queued[k] = len(a.series)
	a.series = append(a.series, newSeriesRow(fp, h, t, lset))
	return e, t, nil
}

// commit inserts the transaction through the group committer and returns
// once it is in ClickHouse.
func (a *appender) commit() error {
	if a.done {
		return errors.New("commit on a committed or rolled back appender")
	}
	a.done = true
	if a.cols == nil || len(a.cols.fps) == 0 {
		a.releaseColumns()
		return nil
	}
	c := a.cols
	req := &commitReq{
		tenant: string(a.ts.id),
		fps:    c.fps, tss: c.tss, vals: c.vals,
		digits: c.digits, scales: c.scales,
		series: a.series,
		done:   make(chan error, 1),
	}
	if c.hasHists {
		req.hists = c.hists
	}
	if c.hasSTs {
		req.sts = c.sts
	}
	err := a.ts.s.committer.commit(a.ctx, req)
	if req.released {
		a.releaseColumns()
	} else {
		a.cols = nil // still queued: the committer may read it
	}
	if err != nil {
		return err
	}
	a.ts.state.markRegistered(a.series)
	a.ts.s.stats.created(a.ts.id, storage.ActiveSince(time.Now(), a.ts.s.cfg.ActiveSeriesWindow), a.series, a.created) // read-your-writes (cardinality_stats.go)
	return nil
}

func (a *appender) rollback() error {
	if a.done {
		return nil
	}
	a.done = true
	a.releaseColumns()
	a.series = nil
	return nil
}

// appenderV2 is the Prometheus AppenderV2 interface over appender.
// Exemplars and metadata go to their tables (aux.go); start timestamps
// are stored with the sample.
type appenderV2 struct{ *appender }

func (a appenderV2) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	ref, err := a.appendAny(ref, ls, st, t, v, h, fh)
	if err != nil {
		return ref, err
	}
	return a.appendAux(ref, ls, opts) // exemplars and metadata
}
func (a appenderV2) Commit() error   { return a.commitWithAux() }
func (a appenderV2) Rollback() error { return a.rollback() }
