package clickhouse

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/storagetest"
	"github.com/luminate-io/luminate/tenancy"
)

// openDecimalStore opens a store whose samples table has the decimal
// columns on the 18.16 test server. Migration 2 adds them only where
// codecs exist; here they are added by hand (as migration 2 does, less
// the codecs), so the decimal write and read paths run against a real
// server, and the store finds them from the table, not the version.
func openDecimalStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s := openStore(t, cfg)
	if !s.schema.decimals {
		// 18.16 has no ADD COLUMN IF NOT EXISTS.
		ddl := strings.ReplaceAll(s.schema.decimalColumnsDDL(samplesTable, false), " IF NOT EXISTS", "")
		require.NoError(t, s.conn.Exec(t.Context(), ddl))
		require.NoError(t, s.Close())
		s = openStore(t, cfg)
	}
	require.True(t, s.schema.decimals, "the store finds the decimal columns")
	return s
}

func decimalBackend() storagetest.Backend {
	return storagetest.Backend{
		Open: func(t testing.TB) storage.MetricsStore { return openDecimalStore(t, testConfig(t)) },
		Reopen: func(t testing.TB, s storage.MetricsStore) storage.MetricsStore {
			old := s.(*Store)
			require.NoError(t, old.Close())
			return openDecimalStore(t, old.cfg)
		},
		Limited: func(t testing.TB, maxExemplars, maxMetadata int) storage.MetricsStore {
			cfg := testConfig(t)
			cfg.ExemplarLimits = func(tenancy.ID) int { return maxExemplars }
			cfg.MetadataLimits = func(tenancy.ID) int { return maxMetadata }
			return openDecimalStore(t, cfg)
		},
	}
}

// TestConformanceDecimalColumns runs the conformance suite on a samples
// table with decimal columns.
func TestConformanceDecimalColumns(t *testing.T) { storagetest.Run(t, decimalBackend()) }

// TestValuesBitExact writes values of every kind through the store and
// reads them back bit for bit, with and without decimal columns.
func TestValuesBitExact(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(testing.TB) *Store
	}{
		{"float_column", newTestStore},
		{"decimal_columns", func(t testing.TB) *Store { return openDecimalStore(t, testConfig(t)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := c.open(t)
			ts := s.ForTenant("bits")
			rnd := rand.New(rand.NewPCG(5, 6))
			const nSeries, points = 8, 500
			want := make([][]float64, nSeries)
			app := ts.AppenderV2(t.Context())
			for i := range nSeries {
				l := labels.FromStrings("__name__", "bits", "i", strconv.Itoa(i))
				prev := float64(rnd.IntN(1000))
				for j := range points {
					var v float64
					switch i {
					case 0: // random walk, two decimals
						prev = math.Round((prev+rnd.Float64()*2-1)*100) / 100
						v = prev
					case 1: // counter
						prev += float64(rnd.IntN(5))
						v = prev
					case 2: // any bits
						v = math.Float64frombits(rnd.Uint64())
					case 3: // mixed scales
						v = float64(rnd.Int64N(1e9)) / math.Pow10(rnd.IntN(14))
					case 4:
						v = []float64{math.Float64frombits(value.StaleNaN), math.NaN(), math.Copysign(0, -1), 0, math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}[j%8]
					case 5:
						v = rnd.NormFloat64()
					case 6: // values a decimal scale cannot hold exactly
						v = float64(1<<53+rnd.Int64N(1<<20)*2) / math.Pow10(rnd.IntN(3))
					default: // ratios
						v = float64(rnd.IntN(1000)) / float64(1+rnd.IntN(999))
					}
					want[i] = append(want[i], v)
					_, err := app.Append(0, l, 0, int64(j+1)*15_000, v, nil, nil, promstorage.AOptions{})
					require.NoError(t, err)
				}
			}
			require.NoError(t, app.Commit())
			if s.schema.decimals {
				var n uint64
				require.NoError(t, s.conn.QueryRow(t.Context(), "SELECT count() FROM "+s.schema.table(samplesTable)+" WHERE scale >= 0").Scan(&n))
				require.Greater(t, n, uint64(3*points), "decimals stored as digits and scale")
			}
			q, err := ts.Querier(0, math.MaxInt64)
			require.NoError(t, err)
			defer q.Close()
			set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "bits"))
			n := 0
			for set.Next() {
				i, err := strconv.Atoi(set.At().Labels().Get("i"))
				require.NoError(t, err)
				it := set.At().Iterator(nil)
				j := 0
				for it.Next() == chunkenc.ValFloat {
					tt, v := it.At()
					require.Equal(t, int64(j+1)*15_000, tt)
					require.Equal(t, math.Float64bits(want[i][j]), math.Float64bits(v), "series %d sample %d: want %v, got %v", i, j, want[i][j], v)
					j++
				}
				require.NoError(t, it.Err())
				require.Equal(t, points, j)
				n++
			}
			require.NoError(t, set.Err())
			require.Equal(t, nSeries, n)
		})
	}
}
