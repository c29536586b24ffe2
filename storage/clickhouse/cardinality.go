package clickhouse

import (
	"context"
	"fmt"
	"strconv"

	"github.com/luminate-io/luminate/storage"
)

// Cardinality reports the tenant's series from the series table (every
// series with samples in the retained data), without scanning samples
// except for the first and last day to find MinTime and MaxTime.
func (ts *tenantStore) Cardinality(ctx context.Context, limit int) (storage.Cardinality, error) {
	s := ts.s
	series := s.schema.table(seriesTable)
	var c storage.Cardinality
	if _, err := s.refreshTombs(ctx, ts.id); err != nil { // without deleted series (delete.go)
		return c, err
	}
	tenant := "tenant = " + quote(string(ts.id)) + s.tombCond(ts.id)
	sampleTenant := "tenant = " + quote(string(ts.id))
	lim := ""
	if limit > 0 {
		lim = " LIMIT " + strconv.Itoa(limit)
	}

	var minHour, maxHour int32
	var n uint64
	row := fmt.Sprintf("SELECT uniqExact(fingerprint), min(hour), max(hour) FROM %s WHERE %s", series, tenant)
	rows, err := s.query(ctx, "cardinality", row)
	if err != nil {
		return c, err
	}
	if rows.Next() {
		err = rows.Scan(&n, &minHour, &maxHour)
	}
	rows.Close()
	if err != nil {
		return c, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
	}
	c.NumSeries = n
	if n == 0 {
		return c, nil
	}

	counts := func(sql string) ([]storage.Count, error) {
		rows, err := s.query(ctx, "cardinality", sql)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []storage.Count
		for rows.Next() {
			var r storage.Count
			if err := rows.Scan(&r.Name, &r.Value); err != nil {
				return nil, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
			}
			out = append(out, r)
		}
		return out, s.readFailed("cardinality", rows.Err())
	}
	// One row per series: the labels of any of its hours.
	perSeries := fmt.Sprintf("(SELECT fingerprint, any(metric_name) AS metric_name, any(label_names) AS label_names, any(label_values) AS label_values FROM %s WHERE %s GROUP BY fingerprint)", series, tenant)
	pairs := fmt.Sprintf("(SELECT fingerprint, n, v FROM %s ARRAY JOIN label_names AS n, label_values AS v)", perSeries)
	if c.ByMetricName, err = counts(fmt.Sprintf("SELECT metric_name, count() AS c FROM %s WHERE metric_name != '' GROUP BY metric_name ORDER BY c DESC, metric_name%s", perSeries, lim)); err != nil {
		return c, err
	}
	if c.ByLabelName, err = counts(fmt.Sprintf("SELECT n, uniqExact(v) AS c FROM %s GROUP BY n ORDER BY c DESC, n%s", pairs, lim)); err != nil {
		return c, err
	}
	if c.ByLabelPair, err = counts(fmt.Sprintf("SELECT concat(n, '=', v) AS p, count() AS c FROM %s GROUP BY p ORDER BY c DESC, p%s", pairs, lim)); err != nil {
		return c, err
	}
	if c.MemoryByLabel, err = counts(fmt.Sprintf("SELECT n, toUInt64(sum(length(v))) AS c FROM (SELECT DISTINCT n, v FROM %s) GROUP BY n ORDER BY c DESC, n%s", pairs, lim)); err != nil {
		return c, err
	}
	var pairCount uint64
	rows, err = s.query(ctx, "cardinality", fmt.Sprintf("SELECT uniqExact(n, v) FROM %s", pairs))
	if err != nil {
		return c, err
	}
	if rows.Next() {
		err = rows.Scan(&pairCount)
	}
	rows.Close()
	if err != nil {
		return c, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
	}
	c.NumLabelPairs = int(pairCount)

	// The first and last sample lie in the first and last hour with a
	// series row: read only those hours of samples.
	samples := s.schema.table(samplesTable)
	rows, err = s.query(ctx, "cardinality", fmt.Sprintf(
		"SELECT (SELECT min(ts) FROM %[1]s WHERE %[2]s AND ts >= %[3]d AND ts <= %[4]d), (SELECT max(ts) FROM %[1]s WHERE %[2]s AND ts >= %[5]d AND ts <= %[6]d)",
		samples, sampleTenant, hourStart(minHour), hourEnd(minHour), hourStart(maxHour), hourEnd(maxHour)))
	if err != nil {
		return c, err
	}
	if rows.Next() {
		err = rows.Scan(&c.MinTime, &c.MaxTime)
	}
	rows.Close()
	if err != nil {
		return c, s.readFailed("cardinality", fmt.Errorf("cardinality: %w", err))
	}
	return c, nil
}
