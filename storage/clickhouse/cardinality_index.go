package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/luminate-io/luminate/storage"
)

// Matchers on labels other than the metric name are answered from the
// label index (series_index, schema_index.go) when every matcher set has
// one that selects only series carrying the label (an equality to a
// non-empty value, or a regex that does not match ""): the index rows of
// that label pair are read, with the series' labels beside them, instead
// of every series row of the tenant in range. The other matchers of the
// set, tombstones and forgotten series apply as on the series table.

// indexDrivers returns, per set, the matcher that selects its index rows,
// and false when a set has none (or a matcher too long to send as SQL).
// Sets that all hold an equality on the metric name stay on the series
// table, whose key starts with it.
func indexDrivers(sets [][]*labels.Matcher) ([]*labels.Matcher, bool) {
	named := 0
	for _, ms := range sets {
		if slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return m.Name == labels.MetricName && m.Type == labels.MatchEqual }) {
			named++
		}
	}
	if len(sets) == 0 || named == len(sets) {
		return nil, false
	}
	out := make([]*labels.Matcher, len(sets))
	for i, ms := range sets {
		if _, all := pushdown(ms); !all {
			return nil, false
		}
		for _, m := range ms {
			if m.Name == labels.MetricName || m.Matches("") || m.Type != labels.MatchEqual && m.Type != labels.MatchRegexp {
				continue
			}
			// Equality first: one label pair, one range of the key.
			if out[i] == nil || out[i].Type != labels.MatchEqual && m.Type == labels.MatchEqual {
				out[i] = m
			}
		}
		if out[i] == nil {
			return nil, false
		}
	}
	return out, true
}

// driverSQL is the condition on index rows of driver matcher m.
func driverSQL(m *labels.Matcher) string {
	name := "label_name = " + quote(m.Name)
	if m.Type == labels.MatchEqual {
		return name + " AND label_value = " + quote(m.Value)
	}
	if set := m.SetMatches(); len(set) > 0 {
		in := make([]string, len(set))
		for i, v := range set {
			in[i] = quote(v)
		}
		return name + " AND label_value IN (" + strings.Join(in, ", ") + ")"
	}
	return name + " AND match(label_value, " + quote(anchoredRegex(m.Value)) + ")"
}

// indexWhere is the condition on index rows of the tenant's series the
// sets select in days [d1, d2], without deleted series: series deleted for
// good are left out, and with tombstones a series counts when one of its
// days is not wholly deleted (a day's row counts unless a tombstone covers
// all its samples, as a series row counts unless one covers its hour).
// Subqueries read local tables: in cluster mode the query runs on every
// shard, which holds all rows of its series.
func (ts *tenantStore) indexWhere(drivers []*labels.Matcher, groups [][]*labels.Matcher, d1, d2 int32) string {
	s := ts.s
	tenant := quote(string(ts.id))
	conds := make([]string, len(groups))
	for i, ms := range groups {
		// The driver's condition on the row's own pair stands for the
		// driver: the labels arrays are read only for the other matchers.
		others := slices.DeleteFunc(slices.Clone(ms), func(m *labels.Matcher) bool { return m == drivers[i] })
		conds[i] = "(" + driverSQL(drivers[i]) + " AND " + matchersSQL(others) + ")"
	}
	sel := fmt.Sprintf("tenant = %s AND day >= %d AND day <= %d AND (%s)", tenant, d1, d2, strings.Join(conds, " OR "))
	where := sel + fmt.Sprintf(" AND fingerprint NOT IN (SELECT fingerprint FROM %s WHERE tenant = %s AND last_day >= %d)",
		s.schema.table(s.schema.storageTable(forgottenTable)), tenant, d1)
	if tomb := s.tombCond(ts.id); tomb != "" {
		// Aliases never reuse a column's name: ClickHouse would read the
		// aggregate in the WHERE clause.
		where += fmt.Sprintf(" AND fingerprint IN (SELECT fingerprint FROM (SELECT fingerprint, day, minMerge(min_ts_state) AS min_ts, maxMerge(max_hour_state) AS hour FROM %s WHERE %s GROUP BY fingerprint, day) WHERE 1%s)",
			s.schema.table(s.schema.storageTable(indexTable)), sel, tomb)
	}
	return where
}

// indexCardinality answers req, whose matchers indexDrivers accepted, from
// the index over days [d1, d2]: the series per label pair counted on the
// matching rows (uniqExact: a series has a row per day and, until parts
// merge, per insert), without grouping the rows by series first, which
// costs three times as much.
func (ts *tenantStore) indexCardinality(ctx context.Context, req storage.CardinalityRequest, drivers []*labels.Matcher, d1, d2 int32) (storage.Cardinality, error) {
	table, where := ts.s.schema.table(indexTable), ts.indexWhere(drivers, req.Matchers, d1, d2)
	pairs := fmt.Sprintf("SELECT n AS label_name, v AS label_value, c FROM (SELECT n, v, toInt64(uniqExact(fingerprint)) AS c FROM %s ARRAY JOIN label_names AS n, label_values AS v WHERE %s GROUP BY n, v)", table, where)
	times := fmt.Sprintf("SELECT minMerge(min_ts_state), maxMerge(max_hour_state) FROM %s WHERE %s", table, where)
	if tomb := ts.s.tombCond(ts.id); tomb != "" { // without the wholly deleted days
		times = fmt.Sprintf("SELECT min(min_ts), max(hour) FROM (SELECT fingerprint, day, minMerge(min_ts_state) AS min_ts, maxMerge(max_hour_state) AS hour FROM %s WHERE %s GROUP BY fingerprint, day) WHERE 1%s", table, where, tomb)
	}
	return ts.pairCardinality(ctx, req, pairs, times)
}

// indexListSeries lists the series req selects with a row at or after
// hour h1 in days [dayOf(start), dayOf(end)], from the index, in label
// order, at most req.Limit; more than limit (> 0) fails as the querier's
// listing does.
func (ts *tenantStore) indexListSeries(ctx context.Context, req storage.CardinalityRequest, drivers []*labels.Matcher, start, end int64) ([]labels.Labels, error) {
	s := ts.s
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s GROUP BY fingerprint HAVING maxMerge(max_hour_state) >= %d AND minMerge(min_ts_state) <= %d ORDER BY %s",
		labelPairsExpr, s.schema.table(indexTable), ts.indexWhere(drivers, req.Matchers, dayOf(start), dayOf(end)), hourOf(start), end, labelOrderExpr)
	limit := (&querier{ts: ts}).maxSeries()
	if req.Limit > 0 && (limit == 0 || req.Limit <= limit) {
		sql += fmt.Sprintf(" LIMIT %d", req.Limit)
	} else if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit+1)
	}
	rows, err := s.query(ctx, "series", sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []labels.Labels
	var b labels.ScratchBuilder
	var pairs string
	for rows.Next() {
		if err := rows.Scan(&pairs); err != nil {
			return nil, s.readFailed("series", fmt.Errorf("read series: %w", err))
		}
		if err := decodeLabelPairs(pairs, &b); err != nil {
			return nil, s.readFailed("series", fmt.Errorf("read series: %w", err))
		}
		out = append(out, b.Labels())
	}
	if err := rows.Err(); err != nil {
		return nil, s.readFailed("series", fmt.Errorf("read series: %w", err))
	}
	if limit > 0 && len(out) > limit {
		return nil, tooManySeries(limit)
	}
	slices.SortFunc(out, labels.Compare)
	return out, nil
}
