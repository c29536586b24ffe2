package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/tenancy"
)

// fingerprint is a series' identity in ClickHouse. Its low 48 bits are
// xxhash64 over the series' labels sorted by name with the tenant label
// among them, each as name 0xff value 0xff (labels with an empty value are
// not part of a series); its high 16 bits are xxhash64 of tenant 0xff
// metric name. The samples table is ordered by fingerprint, so the series
// of one metric lie together and a dashboard reading a metric's series
// reads few granules; sharding by fingerprint (modulo) uses the low bits
// and still spreads them. It is stored, so it never changes. buf is
// scratch space, returned for reuse.
func fingerprint(id tenancy.ID, lset labels.Labels, buf []byte) (uint64, []byte) {
	buf = buf[:0]
	tenantDone := false
	metric := ""
	lset.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		if l.Name == labels.MetricName {
			metric = l.Value
		}
		if !tenantDone && l.Name > tenancy.Label {
			buf = appendLabel(buf, tenancy.Label, string(id))
			tenantDone = true
		}
		buf = appendLabel(buf, l.Name, l.Value)
	})
	if !tenantDone {
		buf = appendLabel(buf, tenancy.Label, string(id))
	}
	series := xxhash.Sum64(buf)
	buf = appendLabel(buf[:0], string(id), metric)
	return xxhash.Sum64(buf)&metricBits | series&^metricBits, buf
}

// metricBits are the fingerprint bits taken from the metric name.
const metricBits = 0xFFFF_0000_0000_0000

func appendLabel(buf []byte, name, value string) []byte {
	buf = append(buf, name...)
	buf = append(buf, 0xff)
	buf = append(buf, value...)
	return append(buf, 0xff)
}

// hourOf is the hour bucket of millisecond timestamp t (floor division),
// clamped to Int32, the type of the series table's hour column.
func hourOf(t int64) int32 {
	h := t / msPerHour
	if t%msPerHour < 0 {
		h--
	}
	return int32(max(min(h, math.MaxInt32), math.MinInt32))
}

// noHour marks an unused slot of seriesEntry.hours.
const noHour = math.MinInt32

// seriesEntry is what a tenant's cache knows about one series.
type seriesEntry struct {
	// hours are the two most recent hours for which the series has a row
	// in the series table (noHour when unknown), minTs the earliest
	// min_ts of those rows: a sample of such an hour at or after minTs
	// needs no new row, an earlier one does (rows record their hour's
	// earliest sample, which makes label queries exact; see querier.go).
	hours [2]int32
	minTs [2]int64
	// seen is the wall-clock hour the series was last appended to; series
	// seen within activeHours count as active.
	seen int32
	// scale is the decimal scale the series' values used last (decimal.go),
	// tried first for the next; read and written without mu.
	scale atomic.Int32
}

// covers reports whether the series has a row for hour h with min_ts at
// or before t, and that min_ts.
func (e *seriesEntry) covers(h int32, t int64) (int64, bool) {
	for i := range e.hours {
		if e.hours[i] == h && e.minTs[i] <= t {
			return e.minTs[i], true
		}
	}
	return 0, false
}

// register records a row for hour h with min_ts minTs.
func (e *seriesEntry) register(h int32, minTs int64) {
	for i := range e.hours {
		if e.hours[i] == h {
			e.minTs[i] = min(e.minTs[i], minTs)
			return
		}
	}
	switch {
	case h > e.hours[0]:
		e.hours[1], e.minTs[1] = e.hours[0], e.minTs[0]
		e.hours[0], e.minTs[0] = h, minTs
	case h > e.hours[1]:
		e.hours[1], e.minTs[1] = h, minTs
	}
}

func newSeriesEntry() *seriesEntry {
	return &seriesEntry{hours: [2]int32{noHour, noHour}}
}

// activeHours is how long after its last sample a series stays in a
// tenant's cache (which hours it has rows for); what counts as active is
// active.go's.
const activeHours = 24

// tenantState is one tenant's series cache: which series have rows in the
// series table for which hours (so each is inserted once per hour, not
// per sample), and which series are active (for SeriesLimits). It is loaded
// from the series table on first use, so a restarted process neither
// re-inserts the current hour's series rows nor forgets active series.
// Safe for concurrent use.
type tenantState struct {
	id tenancy.ID

	loadMu sync.Mutex
	loaded atomic.Bool

	mu     sync.Mutex
	series map[uint64]*seriesEntry

	active activeCount // active series, tenant-wide (active.go)
}

func newTenantState(id tenancy.ID) *tenantState {
	return &tenantState{id: id, series: map[uint64]*seriesEntry{}}
}

// load fills the cache from the series table once.
func (t *tenantState) load(ctx context.Context, s *Store) error {
	if t.loaded.Load() {
		return nil
	}
	t.loadMu.Lock()
	defer t.loadMu.Unlock()
	if t.loaded.Load() {
		return nil
	}
	now := hourOf(time.Now().UnixMilli())
	q := fmt.Sprintf("SELECT fingerprint, max(hour), argMax(min_ts, hour) FROM %s WHERE tenant = %s AND hour >= %d GROUP BY fingerprint",
		s.schema.table(seriesTable), quote(string(t.id)), now-activeHours)
	rows, err := s.query(ctx, "load_series", q)
	if err != nil {
		return err
	}
	defer rows.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for rows.Next() {
		var (
			fp    uint64
			h     int32
			minTs int64
		)
		if err := rows.Scan(&fp, &h, &minTs); err != nil {
			return s.readFailed("load_series", fmt.Errorf("load series of tenant %s: %w", t.id, err))
		}
		e := t.series[fp]
		if e == nil {
			e = newSeriesEntry()
			e.seen = h
			t.series[fp] = e
		}
		e.register(h, minTs)
	}
	if err := rows.Err(); err != nil {
		return s.readFailed("load_series", fmt.Errorf("load series of tenant %s: %w", t.id, err))
	}
	// The first count of active series, so that the series limit has one.
	if _, err := t.active.count(ctx, s, t.id); err != nil {
		return err
	}
	t.loaded.Store(true)
	return nil
}

// markRegistered records that rows for the given (series, hour) pairs were
// inserted.
func (t *tenantState) markRegistered(rows []seriesRow) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range rows {
		if e := t.series[r.fp]; e != nil {
			e.register(r.hour, r.minTs)
		}
	}
}

// prune forgets series not seen for activeHours and returns how many
// remain.
func (t *tenantState) prune(nowHour int32) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for fp, e := range t.series {
		if e.seen < nowHour-activeHours {
			delete(t.series, fp)
		}
	}
	return len(t.series)
}

// seriesRow is one row of the series table to insert.
type seriesRow struct {
	fp     uint64
	hour   int32
	minTs  int64 // the earliest sample of the hour this row is written for
	name   string
	names  []string
	values []string
}

func newSeriesRow(fp uint64, hour int32, minTs int64, lset labels.Labels) seriesRow {
	r := seriesRow{fp: fp, hour: hour, minTs: minTs, names: make([]string, 0, lset.Len()), values: make([]string, 0, lset.Len())}
	lset.Range(func(l labels.Label) {
		if l.Value == "" {
			return
		}
		// Copies: the caller's strings may point into a reused buffer.
		name, value := strings.Clone(l.Name), strings.Clone(l.Value)
		if name == labels.MetricName {
			r.name = value
		}
		r.names = append(r.names, name)
		r.values = append(r.values, value)
	})
	return r
}
