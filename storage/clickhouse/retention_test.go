package clickhouse

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// TestCutoffSQL: one branch per retention other than the default, tenants
// sorted, forever as the smallest literal that stays an Int64; the deletes
// read only the shorter tenants' keys when the default is the longest.
func TestCutoffSQL(t *testing.T) {
	now := time.UnixMilli(100 * msPerDay)
	h := time.Hour
	expr, maxCut := cutoffSQL(24*h, map[tenancy.ID]time.Duration{"b": h, "a": h, "c": 24 * h, "z": 0}, now)
	require.Equal(t, "multiIf(tenant IN ('z'), toInt64(-9223372036854775807), tenant IN ('a', 'b'), toInt64(8636400000), toInt64(8553600000))", expr)
	require.Equal(t, int64(100*msPerDay-msPerHour), maxCut)
	expr, maxCut = cutoffSQL(0, nil, now)
	require.Equal(t, "toInt64(-9223372036854775807)", expr)
	require.Equal(t, int64(math.MinInt64), maxCut)

	s := &Store{cfg: Config{RetentionPolicy: fixedPolicy{def: 24 * h, over: map[tenancy.ID]time.Duration{"a": h}}}}
	conds := s.retentionDeletes(now)
	require.Equal(t, "tenant IN ('a') AND ts < 8636400000 AND ts < multiIf(tenant IN ('a'), toInt64(8636400000), toInt64(8553600000))", conds[samplesTable])
	require.Equal(t, "tenant IN ('a') AND hour < 2399 AND hour < intDiv(multiIf(tenant IN ('a'), toInt64(8636400000), toInt64(8553600000)), 3600000)", conds[seriesTable])
	s.cfg.RetentionPolicy = fixedPolicy{def: h, over: map[tenancy.ID]time.Duration{"a": 24 * h}}
	require.NotContains(t, s.retentionDeletes(now)[samplesTable], "tenant IN ('a') AND", "every tenant but a is shorter")
	s.cfg.RetentionPolicy = fixedPolicy{def: h, over: map[tenancy.ID]time.Duration{"a": h}}
	require.Nil(t, s.retentionDeletes(now), "one retention: partitions do it all")
}
