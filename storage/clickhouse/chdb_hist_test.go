//go:build chdb

package clickhouse

import (
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestModernHistograms migrates a float-only schema (the release before
// histograms) to the histogram one on the modern engine, then reads every
// kind of histogram back bit for bit with the store's own histogram query.
func TestModernHistograms(t *testing.T) {
	modern := openChDB(t)
	ctx := t.Context()
	info, err := detectServer(ctx, modern)
	require.NoError(t, err)
	sc := schema{db: "hist", info: info}
	applied, err := sc.migrateThrough(ctx, modern, migrations[:2])
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, applied)
	require.NoError(t, modern.exec(ctx, "INSERT INTO "+sc.table(samplesTable)+" (tenant, fingerprint, ts, value, digits, scale) VALUES ('t', 1, 500, 0, 15, 1)"))
	applied, err = sc.migrate(ctx, modern)
	require.NoError(t, err)
	var later []int // 3 and any after it
	for _, m := range migrations[2:] {
		later = append(later, m.version)
	}
	require.Equal(t, later, applied)
	require.Equal(t, 3, applied[0])
	has, err := sc.hasHistColumn(ctx, modern)
	require.NoError(t, err)
	require.True(t, has)
	applied, err = sc.migrate(ctx, modern)
	require.NoError(t, err)
	require.Empty(t, applied)
	create, err := modern.query("SHOW CREATE TABLE " + sc.table(samplesTable))
	require.NoError(t, err)
	require.Contains(t, create, "`hist` String DEFAULT \\'\\' CODEC(ZSTD(3))")
	sc.decimals = true

	// Rows as the appender writes them, the encodings as hex.
	cases := histogramCases(1000)
	var buf strings.Builder
	for _, c := range cases {
		bits, enc := math.Float64bits(c.v), ""
		switch {
		case c.h != nil:
			bits, enc = histMarker, string(appendHistogram(nil, c.h))
		case c.fh != nil:
			bits, enc = histMarker, string(appendFloatHistogram(nil, c.fh))
		}
		fmt.Fprintf(&buf, "t\t1\t%d\t%d\t%s\n", c.t, bits, hex.EncodeToString([]byte(enc)))
	}
	path := filepath.Join(t.TempDir(), "hist.tsv")
	require.NoError(t, os.WriteFile(path, []byte(buf.String()), 0o644))
	require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, fingerprint, ts, value, digits, scale, hist) SELECT tenant, fingerprint, ts, reinterpretAsFloat64(bits), 0, -1, unhex(h) FROM file(%s, 'TSV', 'tenant String, fingerprint UInt64, ts Int64, bits UInt64, h String')",
		sc.table(samplesTable), quote(path))))

	// The float written before the migration reads as it did.
	v, err := modern.queryString(ctx, fmt.Sprintf("SELECT toString(%s) FROM %s WHERE ts = 500", sc.valueExpr(), sc.table(samplesTable)))
	require.NoError(t, err)
	require.Equal(t, "1.5", v)

	// The store's histogram query, its hist column as hex.
	sql := histsSQL(sc.table(samplesTable), "tenant = 't'", []uint64{1}, math.MinInt64, math.MaxInt64)
	sql = strings.Replace(sql, "SELECT fingerprint, ts, hist,", "SELECT fingerprint, ts, hex(hist),", 1)
	out, err := modern.query(sql + " ORDER BY ts")
	require.NoError(t, err)
	got := map[int64]string{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.Split(l, "\t")
		require.Len(t, f, 4, l)
		ts, err := strconv.ParseInt(f[1], 10, 64)
		require.NoError(t, err)
		raw, err := hex.DecodeString(f[2])
		require.NoError(t, err)
		got[ts] = string(raw)
	}
	n := 0
	for _, c := range cases {
		enc, ok := got[c.t]
		if c.kind() == chunkenc.ValFloat {
			// Only a float with the marker's bits matches, with no hist.
			require.Equal(t, math.Float64bits(c.v) == histMarker, ok, "float at %d", c.t)
			require.Empty(t, enc)
			continue
		}
		require.True(t, ok, "histogram at %d", c.t)
		var read hsample
		if histIsFloat(enc) {
			read.fh = &histogram.FloatHistogram{}
			require.NoError(t, decodeFloatHistogram(enc, read.fh))
		} else {
			read.h = &histogram.Histogram{}
			require.NoError(t, decodeHistogram(enc, read.h))
		}
		require.Equal(t, bitsOf(c), bitsOf(read), "histogram at %d", c.t)
		n++
	}
	require.Greater(t, n, 30)
}

// TestModernHistogramBytesPerSample loads 1000 series x 2 h of 20-bucket
// counter histograms at 15 s into the modern schema on chDB, merges, and
// reports compressed bytes per histogram sample from system.parts, with
// the hist column's codec and encoding varied for comparison, next to
// Prometheus' own chunk encoding of the same data.
func TestModernHistogramBytesPerSample(t *testing.T) {
	modern := openChDB(t)
	ctx := t.Context()
	info, err := detectServer(ctx, modern)
	require.NoError(t, err)
	const nSeries, points, step = 1000, 480, 15_000
	type encoding struct {
		name string
		enc  func(h *histogram.Histogram) []byte
	}
	encodings := []encoding{
		{"varint", func(h *histogram.Histogram) []byte { return appendHistogram(nil, h) }},
		{"chunk1", func(h *histogram.Histogram) []byte {
			c := chunkenc.NewHistogramChunk()
			app, err := c.Appender()
			require.NoError(t, err)
			_, _, _, err = app.AppendHistogram(nil, 0, 0, h, true)
			require.NoError(t, err)
			return c.Bytes()
		}},
	}
	prom := promChunkBytes(nSeries, points, step)
	t.Logf("Prometheus histogram chunks (120 samples) of the same data: %.3f bytes/sample", prom)
	for k, e := range encodings {
		t.Run(e.name, func(t *testing.T) {
			sc := schema{db: fmt.Sprintf("hbps%d", k), info: info}
			_, err := sc.migrate(ctx, modern)
			require.NoError(t, err)
			var buf strings.Builder
			raw := 0
			var hash []byte
			lsets := benchLabels(nSeries)
			genHistogramSeries(nSeries, points, 1_700_000_000_000, step, 1, func(i, j int, ts int64, h *histogram.Histogram) {
				var fp uint64
				fp, hash = fingerprint("bench", lsets[i], hash)
				enc := e.enc(h)
				raw += len(enc)
				fmt.Fprintf(&buf, "bench\t%d\t%d\t%s\n", fp, ts, hex.EncodeToString(enc))
			})
			path := filepath.Join(t.TempDir(), "hist.tsv")
			require.NoError(t, os.WriteFile(path, []byte(buf.String()), 0o644))
			buf.Reset()
			require.NoError(t, modern.exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, fingerprint, ts, value, digits, scale, hist) SELECT tenant, fingerprint, ts, reinterpretAsFloat64(toUInt64(%d)), 0, -1, unhex(h) FROM file(%s, 'TSV', 'tenant String, fingerprint UInt64, ts Int64, h String')",
				sc.table(samplesTable), histMarker, quote(path))))
			measure := func(what string) float64 {
				require.NoError(t, modern.exec(ctx, "OPTIMIZE TABLE "+sc.table(samplesTable)+" FINAL"))
				out, err := modern.query(fmt.Sprintf("SELECT sum(data_compressed_bytes), sum(rows) FROM system.parts WHERE active AND database = %s AND table = 'samples'", quote(sc.db)))
				require.NoError(t, err)
				var compressed, rows float64
				_, err = fmt.Sscan(out, &compressed, &rows)
				require.NoError(t, err)
				require.Equal(t, float64(nSeries*points), rows)
				hist, err := modern.queryString(ctx, fmt.Sprintf("SELECT data_compressed_bytes / %f FROM system.columns WHERE database = %s AND table = 'samples' AND name = 'hist'", rows, quote(sc.db)))
				require.NoError(t, err)
				t.Logf("%s, %s: %.3f bytes/sample in all (hist column %s) over %.0f samples, %.1f bytes/sample before compression (%s)",
					e.name, what, compressed/rows, hist, rows, float64(raw)/rows, info.Version)
				return compressed / rows
			}
			total := measure("hist CODEC(ZSTD(3))")
			if e.name == "varint" {
				cols, err := modern.query(fmt.Sprintf("SELECT name, data_compressed_bytes FROM system.columns WHERE database = %s AND table = 'samples'", quote(sc.db)))
				require.NoError(t, err)
				t.Logf("columns:\n%s", cols)
				require.LessOrEqual(t, total, prom*1.5, "within half again of Prometheus' own chunks")
			}
			for _, codec := range []string{"ZSTD(1)", "ZSTD(9)", "LZ4"} {
				require.NoError(t, modern.exec(ctx, fmt.Sprintf("ALTER TABLE %s MODIFY COLUMN hist String DEFAULT '' CODEC(%s)", sc.table(samplesTable), codec)))
				measure("hist CODEC(" + codec + ")")
			}
		})
	}
}
