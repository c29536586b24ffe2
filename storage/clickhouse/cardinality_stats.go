package clickhouse

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// The cardinality snapshots: the series per label pair of a tenant over a
// range of days, read from series_stats (schema_stats.go).
//
// Merging the uniq states costs about a microsecond per (series, label)
// of the range (10,440 rows, 1.8 MB of states read for 1,000,000 series
// of three labels; 0.3 s on an idle 2-core host, 0.5 s at load average
// 9, 1.4 s at 20), a snapshot answers in microseconds. So each pod keeps
// a snapshot per tenant and day range and refreshes it in the background
// (statsCache.run), one at a time, every statsRefresh while the tenant
// keeps asking for it (statsKeepWarm); requests never wait for a refresh.
//
// Staleness: the series this pod creates are added to the answers at once
// (statsCache.created: read-your-writes); other pods' new series are
// counted within statsRefresh plus one refresh. A series created here
// that a snapshot already counts (another pod wrote it first, or it
// returns after more than the 24 hours this pod's series cache remembers)
// counts twice until the next refresh. Series deleted for good
// (series_forgotten) are subtracted from the snapshot at each request, so
// a deletion by any pod shows at once: each request reads the tenant's
// series_forgotten row count and newest forgotten_at (its key's first
// column) and the list again when they changed. Only the first request
// of a tenant and day range on a pod, or one after statsKeepWarm without
// requests, reads series_stats itself.
//
// A request whose range holds the same data as a snapshot's (every day
// with data in the snapshot lies in the request's range, which lies in
// the snapshot's) is answered from that snapshot: all time, today and the
// active window are one snapshot for a tenant whose series are all from
// today.
type statsCache struct {
	mu      sync.Mutex
	tenants map[tenancy.ID]*tenantStats
	// refresh, when set (by tests), replaces statsRefresh.
	refresh atomic.Int64
}

// refreshEvery is statsRefresh unless a test changed it.
func (c *statsCache) refreshEvery() time.Duration {
	if d := time.Duration(c.refresh.Load()); d > 0 {
		return d
	}
	return statsRefresh
}

const (
	// statsRefresh is how old a snapshot gets before the background
	// reads it again: the staleness of other pods' new series (the old
	// code read a snapshot again, synchronously, after as long).
	statsRefresh = 30 * time.Second
	// statsMaxAge is the oldest snapshot a request is answered from
	// (when refreshes fail or lag); older, the request reads one.
	statsMaxAge = 2 * time.Minute
	// statsKeepWarm is how long after its last request a snapshot is
	// kept and refreshed; then it is dropped.
	statsKeepWarm = 5 * time.Minute
	// statsTick is how often the background looks for snapshots to
	// refresh.
	statsTick = time.Second
	// maxStatsRanges bounds the day ranges kept per tenant.
	maxStatsRanges = 16
	// maxPending bounds the created series kept per tenant for the
	// snapshots that predate them; past it the oldest are dropped and
	// the snapshots before them are read again at their next request.
	maxPending = 200_000
)

type tenantStats struct {
	mu     sync.Mutex
	slots  map[[2]int32]*statsSlot
	forgot *forgottenSet // nil until read
	// readMu is held while reading forgot.
	readMu sync.Mutex
	// pending are the series this pod created, numbered from
	// pendingBase; seq is the number after the last.
	pending     []createdSeries
	pendingBase uint64
	seq         uint64
	// epoch counts the history writes (see created): a snapshot read
	// before the last one is read again.
	epoch uint64
}

// createdSeries is a series this pod created: the days of its first rows
// and its labels.
type createdSeries struct {
	fp     uint64
	days   [2]int32
	labels [][2]string
	active bool // a row in the active window
}

// statsSlot is one day range's snapshot and its use.
type statsSlot struct {
	key        [2]int32
	raw        *statsEntry // as read, without subtracting forgotten series
	from       uint64      // the pending series raw may miss: from seq from on
	epoch      uint64      // the tenant's epoch when raw was read
	asked      time.Time
	refreshing bool
	// adj is raw for adjKey, less the forgotten series of adjFor, plus the
	// pending series up to adjSeq.
	adj    *statsEntry
	adjKey [2]int32
	adjFor *forgottenSet
	adjSeq uint64
}

// statsEntry is one snapshot: pairs by count descending, then name and
// value; per-name totals; the time range and the days with data.
type statsEntry struct {
	at             time.Time
	pairs          []pairCount
	names          map[string]*nameTotals
	minTs          int64
	maxHour        int32
	minDay, maxDay int32 // the days with data; minDay > maxDay when none
}

type pairCount struct {
	name, value string
	count       uint64
}

type nameTotals struct {
	values, series, bytes uint64
}

// forgottenSet is a tenant's series deleted for good, as read from
// series_forgotten.
type forgottenSet struct {
	version string
	series  []forgottenRow
	fps     map[uint64]bool
}

type forgottenRow struct {
	fp     uint64
	days   [][2]int32 // first and last day of each forgetting
	labels [][2]string
}

// holds reports whether the series is counted in days [d1, d2].
func (f *forgottenRow) holds(d1, d2 int32) bool {
	for _, d := range f.days {
		if d[0] <= d2 && d[1] >= d1 {
			return true
		}
	}
	return false
}

func (c *statsCache) tenant(id tenancy.ID) *tenantStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tenants == nil {
		c.tenants = map[tenancy.ID]*tenantStats{}
	}
	t := c.tenants[id]
	if t == nil {
		t = &tenantStats{slots: map[[2]int32]*statsSlot{}}
		c.tenants[id] = t
	}
	return t
}

// statsCardinality answers req from series_stats over days [d1, d2],
// through the store's snapshot of them.
func (ts *tenantStore) statsCardinality(ctx context.Context, req storage.CardinalityRequest, d1, d2 int32) (storage.Cardinality, error) {
	e, err := ts.s.stats.get(ctx, ts.s, ts.id, d1, d2)
	if err != nil {
		return storage.Cardinality{}, err
	}
	return e.answer(req), nil
}

// get returns a snapshot of tenant id over days [d1, d2], less the series
// forgotten as of now.
func (c *statsCache) get(ctx context.Context, s *Store, id tenancy.ID, d1, d2 int32) (*statsEntry, error) {
	t := c.tenant(id)
	fs, err := t.forgotten(ctx, s, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	key := [2]int32{d1, d2}
	t.mu.Lock()
	slot := t.find(key)
	if slot != nil && now.Sub(slot.raw.at) < statsMaxAge && slot.from >= t.pendingBase && slot.epoch == t.epoch {
		slot.asked = now
		e := t.adjusted(slot, key, fs)
		t.mu.Unlock()
		return e, nil
	}
	from, epoch := t.seq, t.epoch
	t.mu.Unlock()

	raw, err := s.readStats(ctx, id, d1, d2)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	slot = t.slots[key]
	if slot == nil {
		if len(t.slots) >= maxStatsRanges {
			var oldest *statsSlot
			for _, v := range t.slots {
				if oldest == nil || v.asked.Before(oldest.asked) {
					oldest = v
				}
			}
			delete(t.slots, oldest.key)
		}
		slot = &statsSlot{key: key}
		t.slots[key] = slot
	}
	slot.asked = now
	slot.set(raw, from, epoch)
	return t.adjusted(slot, key, fs), nil
}

// created records the series this pod just created, with their series
// rows, for the snapshots read before (see statsCache). A series created
// with a sample in the active window had no row in the series table for
// the window as this pod knows it (its series cache holds every series
// with rows in the last 24 hours): it is added to the snapshots. One
// created with older samples only (a backfill, or a series this pod's
// cache has forgotten) may be in them already: the snapshots are read
// again at their next request instead.
func (c *statsCache) created(id tenancy.ID, activeSince int64, rows []seriesRow, fps []uint64) {
	if len(fps) == 0 {
		return
	}
	t := c.tenant(id)
	isNew := make(map[uint64]bool, len(fps))
	for _, fp := range fps {
		isNew[fp] = true
	}
	since := hourOf(activeSince)
	byFP := map[uint64]int{}
	var add []createdSeries
	history := false
	for _, r := range rows {
		if !isNew[r.fp] {
			continue
		}
		d := floorDiv(r.hour, 24)
		i, ok := byFP[r.fp]
		if !ok {
			cs := createdSeries{fp: r.fp, days: [2]int32{d, d}, labels: make([][2]string, 0, len(r.names))}
			for i := range min(len(r.names), len(r.values)) {
				cs.labels = append(cs.labels, [2]string{r.names[i], r.values[i]})
			}
			i = len(add)
			byFP[r.fp] = i
			add = append(add, cs)
		}
		add[i].days = [2]int32{min(add[i].days[0], d), max(add[i].days[1], d)}
		if r.hour >= since {
			add[i].active = true
		}
	}
	kept := add[:0]
	for _, cs := range add {
		if cs.active {
			kept = append(kept, cs)
		} else {
			history = true
		}
	}
	add = kept
	t.mu.Lock()
	defer t.mu.Unlock()
	if history {
		t.epoch++
	}
	if len(t.slots) == 0 {
		// No snapshot to complete: the next read sees them.
		t.pending, t.pendingBase = nil, t.seq+uint64(len(add))
		t.seq = t.pendingBase
		return
	}
	t.pending = append(t.pending, add...)
	t.seq += uint64(len(add))
	if over := len(t.pending) - maxPending; over > 0 {
		t.pending = slices.Clone(t.pending[over:])
		t.pendingBase += uint64(over)
	}
}

// trim drops the pending series every snapshot has. t.mu is held.
func (t *tenantStats) trim() {
	low := t.seq
	for _, slot := range t.slots {
		low = min(low, max(slot.from, t.pendingBase))
	}
	if n := int(low - t.pendingBase); n > 0 {
		t.pending = slices.Clone(t.pending[n:])
		t.pendingBase = low
	}
}

// adjusted is the slot's snapshot, for the request of days key, less the
// series of fs and with the pending series it misses. t.mu is held.
func (t *tenantStats) adjusted(slot *statsSlot, key [2]int32, fs *forgottenSet) *statsEntry {
	if slot.adj != nil && slot.adjKey == key && slot.adjFor == fs && slot.adjSeq == t.seq {
		return slot.adj
	}
	var pend []createdSeries
	if slot.from >= t.pendingBase {
		pend = t.pending[slot.from-t.pendingBase:]
	}
	slot.adj, slot.adjKey, slot.adjFor, slot.adjSeq = slot.raw.adjust(fs, pend, key[0], key[1]), key, fs, t.seq
	return slot.adj
}

// find returns the slot of key, or one whose data is the same (see
// statsCache), nil if none. t.mu is held.
func (t *tenantStats) find(key [2]int32) *statsSlot {
	if slot := t.slots[key]; slot != nil {
		return slot
	}
	for _, slot := range t.slots {
		k, e := slot.key, slot.raw
		if key[0] < k[0] || key[1] > k[1] || slot.from < t.pendingBase || slot.epoch != t.epoch {
			continue
		}
		lo, hi := e.minDay, e.maxDay // lo > hi: no data
		for _, p := range t.pending[slot.from-t.pendingBase:] {
			c0, c1 := max(p.days[0], k[0]), min(p.days[1], k[1])
			switch {
			case c0 > c1:
			case lo > hi:
				lo, hi = c0, c1
			default:
				lo, hi = min(lo, c0), max(hi, c1)
			}
		}
		if lo > hi || key[0] <= lo && key[1] >= hi {
			return slot
		}
	}
	return nil
}

// set replaces the slot's snapshot, read from pending seq from on. The
// tenant's mu is held.
func (slot *statsSlot) set(raw *statsEntry, from, epoch uint64) {
	slot.raw, slot.from, slot.epoch, slot.adj, slot.adjFor = raw, from, epoch, nil, nil
}

// adjust returns e for days [d1, d2] without the series of fs and with
// those of pend.
func (e *statsEntry) adjust(fs *forgottenSet, pend []createdSeries, d1, d2 int32) *statsEntry {
	delta := map[[2]string]int64{}
	for i := range fs.series {
		f := &fs.series[i]
		if !f.holds(d1, d2) {
			continue
		}
		for _, p := range f.labels {
			delta[p]--
		}
	}
	for _, p := range pend {
		if p.days[0] > d2 || p.days[1] < d1 || fs.fps[p.fp] {
			continue
		}
		for _, l := range p.labels {
			delta[l]++
		}
	}
	if len(delta) == 0 {
		return e
	}
	out := &statsEntry{at: e.at, names: map[string]*nameTotals{}, minTs: e.minTs, maxHour: e.maxHour, minDay: e.minDay, maxDay: e.maxDay}
	for _, p := range e.pairs {
		k := [2]string{p.name, p.value}
		n := int64(p.count) + delta[k]
		delete(delta, k)
		if n <= 0 {
			continue
		}
		p.count = uint64(n)
		out.add(p)
	}
	for k, n := range delta {
		if n > 0 {
			out.add(pairCount{name: k[0], value: k[1], count: uint64(n)})
		}
	}
	slices.SortFunc(out.pairs, func(a, b pairCount) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		return cmp.Compare(a.value, b.value)
	})
	return out
}

// add appends pair p and counts it in its name's totals.
func (e *statsEntry) add(p pairCount) {
	e.pairs = append(e.pairs, p)
	nt := e.names[p.name]
	if nt == nil {
		nt = &nameTotals{}
		e.names[p.name] = nt
	}
	nt.values++
	nt.series += p.count
	nt.bytes += uint64(len(p.value)) * p.count
}

// forgotten returns the tenant's forgotten series, read again when
// series_forgotten changed.
func (t *tenantStats) forgotten(ctx context.Context, s *Store, id tenancy.ID) (*forgottenSet, error) {
	table, tenant := s.schema.table(forgottenTable), quote(string(id))
	v, err := s.queryStringsKind(ctx, "cardinality", fmt.Sprintf("SELECT concat(toString(count()), ':', toString(max(forgotten_at))) FROM %s WHERE tenant = %s", table, tenant))
	if err != nil {
		return nil, err
	}
	version := ""
	if len(v) > 0 {
		version = v[0]
	}
	t.readMu.Lock()
	defer t.readMu.Unlock()
	t.mu.Lock()
	cur := t.forgot
	t.mu.Unlock()
	if cur != nil && cur.version == version {
		return cur, nil
	}
	fs := &forgottenSet{version: version, fps: map[uint64]bool{}}
	rows, err := s.query(ctx, "cardinality", fmt.Sprintf("SELECT fingerprint, groupArray(first_day), groupArray(last_day), any(label_names), any(label_values) FROM %s WHERE tenant = %s GROUP BY fingerprint", table, tenant))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var fp uint64
		var first, last []int32
		var names, values []string
		if err := rows.Scan(&fp, &first, &last, &names, &values); err != nil {
			return nil, s.readFailed("cardinality", fmt.Errorf("read forgotten series: %w", err))
		}
		f := forgottenRow{fp: fp}
		fs.fps[fp] = true
		for i := range min(len(first), len(last)) {
			f.days = append(f.days, [2]int32{first[i], last[i]})
		}
		for i := range min(len(names), len(values)) {
			f.labels = append(f.labels, [2]string{names[i], values[i]})
		}
		fs.series = append(fs.series, f)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed("cardinality", fmt.Errorf("read forgotten series: %w", err))
	}
	t.mu.Lock()
	t.forgot = fs
	t.mu.Unlock()
	return fs, nil
}

// run refreshes the snapshots asked for within statsKeepWarm once they
// are statsRefresh old, one at a time, and drops the others, until ctx
// ends.
func (c *statsCache) run(ctx context.Context, s *Store) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(statsTick, c.refreshEvery()/2)):
		}
		c.refreshDue(ctx, s, time.Now())
	}
}

// refreshDue refreshes each snapshot due (see run).
func (c *statsCache) refreshDue(ctx context.Context, s *Store, now time.Time) {
	c.mu.Lock()
	tenants := make(map[tenancy.ID]*tenantStats, len(c.tenants))
	for id, t := range c.tenants {
		tenants[id] = t
	}
	c.mu.Unlock()
	for id, t := range tenants {
		var due []*statsSlot
		t.mu.Lock()
		for k, slot := range t.slots {
			switch {
			case now.Sub(slot.asked) >= statsKeepWarm:
				delete(t.slots, k)
			case now.Sub(slot.raw.at) >= c.refreshEvery() && !slot.refreshing:
				slot.refreshing = true
				due = append(due, slot)
			}
		}
		t.trim()
		t.mu.Unlock()
		for _, slot := range due {
			t.mu.Lock()
			from, epoch := t.seq, t.epoch
			t.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			raw, err := s.readStats(rctx, id, slot.key[0], slot.key[1])
			cancel()
			t.mu.Lock()
			slot.refreshing = false
			if err == nil {
				slot.set(raw, from, epoch)
				t.trim()
			}
			t.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				s.logger.Warn("cardinality statistics not refreshed; the last snapshot answers", slog.String("tenant", string(id)), slog.Any("err", err))
			}
		}
	}
}

// statsSQL is the query of series per label pair over days [d1, d2]
// from series_stats, most first, and of the time range and days with
// data.
func (s *Store) statsSQL(id tenancy.ID, d1, d2 int32) (pairs, times string) {
	tenant := "tenant = " + quote(string(id))
	days := fmt.Sprintf("day >= %d AND day <= %d", d1, d2)
	pairs = fmt.Sprintf("SELECT label_name, label_value, toInt64(uniqMerge(series)) AS c FROM %s WHERE %s AND %s GROUP BY label_name, label_value ORDER BY c DESC, label_name, label_value",
		s.schema.table(statsTable), tenant, days)
	times = fmt.Sprintf("SELECT minMerge(min_ts), maxMerge(max_hour), min(day), max(day) FROM %s WHERE %s AND %s AND label_name = '__name__'",
		s.schema.table(statsTable), tenant, days)
	return pairs, times
}

// readStats reads a snapshot from series_stats.
func (s *Store) readStats(ctx context.Context, id tenancy.ID, d1, d2 int32) (*statsEntry, error) {
	pairsSQL, timesSQL := s.statsSQL(id, d1, d2)
	e := &statsEntry{at: time.Now(), names: map[string]*nameTotals{}, minDay: 1, maxDay: 0}
	// The time range is read meanwhile (it reads the metric name's rows
	// only): the read waits for the longer query, not the sum.
	var t struct {
		minTs          int64
		maxHour        int32
		minDay, maxDay int32
		err            error
	}
	timesDone := make(chan struct{})
	go func() {
		defer close(timesDone)
		rows, err := s.query(ctx, "cardinality", timesSQL)
		if err != nil {
			t.err = err
			return
		}
		if rows.Next() {
			t.err = rows.Scan(&t.minTs, &t.maxHour, &t.minDay, &t.maxDay)
		}
		rows.Close()
		if t.err != nil {
			t.err = s.readFailed("cardinality", fmt.Errorf("cardinality: %w", t.err))
		}
	}()
	defer func() { <-timesDone }()
	rows, err := s.query(ctx, "cardinality", pairsSQL)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p pairCount
		var n int64
		if err := rows.Scan(&p.name, &p.value, &n); err != nil {
			rows.Close()
			return nil, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
		}
		if n > 0 {
			p.count = uint64(n)
			e.add(p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
	}
	<-timesDone
	if len(e.pairs) == 0 {
		return e, nil
	}
	if t.err != nil {
		return nil, t.err
	}
	e.minTs, e.maxHour, e.minDay, e.maxDay = t.minTs, t.maxHour, t.minDay, t.maxDay
	return e, nil
}

// answer builds req's report from the snapshot.
func (e *statsEntry) answer(req storage.CardinalityRequest) storage.Cardinality {
	var c storage.Cardinality
	var byLabel, seriesByLabel, mem []storage.Count
	for name, nt := range e.names {
		c.NumLabelNames++
		c.NumLabelPairs += int(nt.values)
		c.NumLabelRefs += nt.series
		byLabel = append(byLabel, storage.Count{Name: name, Value: nt.values})
		seriesByLabel = append(seriesByLabel, storage.Count{Name: name, Value: nt.series})
		mem = append(mem, storage.Count{Name: name, Value: nt.bytes})
	}
	if nt := e.names[labels.MetricName]; nt != nil {
		c.NumSeries = nt.series
	}
	c.ByLabelName = storage.TopCounts(byLabel, req.Limit)
	c.SeriesByLabel = storage.TopCounts(seriesByLabel, req.Limit)
	c.MemoryByLabel = storage.TopCounts(mem, req.Limit)
	for _, p := range e.pairs {
		if req.Limit > 0 && len(c.ByLabelPair) >= req.Limit {
			break
		}
		c.ByLabelPair = append(c.ByLabelPair, storage.Count{Name: p.name + "=" + p.value, Value: p.count})
	}
	c.ByMetricName = e.values(labels.MetricName, req.Limit)
	if req.FocusLabel != "" {
		c.ByFocusLabelValue = e.values(req.FocusLabel, req.Limit)
	}
	for _, name := range req.LabelNames {
		lv := storage.LabelValues{Name: name, Values: e.values(name, req.Limit)}
		if nt := e.names[name]; nt != nil {
			lv.NumValues, lv.NumSeries = nt.values, nt.series
		}
		c.LabelValues = append(c.LabelValues, lv)
	}
	if c.NumSeries > 0 {
		c.MinTime = e.minTs
		// The series rows know each hour's first sample, not its last:
		// the newest sample lies in the newest hour, not after now.
		c.MaxTime = min(hourEnd(e.maxHour), max(e.at.UnixMilli(), e.minTs))
	}
	return c
}

// values is the top n values of label name by series.
func (e *statsEntry) values(name string, n int) []storage.Count {
	out := []storage.Count{}
	nt := e.names[name]
	if nt == nil {
		return out
	}
	for _, p := range e.pairs {
		if p.name != name {
			continue
		}
		out = append(out, storage.Count{Name: p.value, Value: p.count})
		if (n > 0 && len(out) >= n) || uint64(len(out)) >= nt.values {
			break
		}
	}
	return out
}
