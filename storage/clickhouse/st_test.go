package clickhouse

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage"
)

// stChunk is one chunk a ChunkQuerier returned, with its samples (their
// start timestamps included) and counter reset header.
type stChunk struct {
	enc     chunkenc.Encoding
	header  chunkenc.CounterResetHeader
	samples []hsample
}

// readChunks reads every sample of metric name through the ChunkQuerier.
func readChunks(t testing.TB, ts storage.TenantStore, name string) []stChunk {
	t.Helper()
	q, err := ts.ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(t.Context(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []stChunk
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() {
			m := it.At()
			c := stChunk{enc: m.Chunk.Encoding(), samples: iterSamples(t, m.Chunk.Iterator(nil))}
			require.NotEmpty(t, c.samples)
			require.Equal(t, m.MinTime, c.samples[0].t)
			require.Equal(t, m.MaxTime, c.samples[len(c.samples)-1].t)
			switch chk := m.Chunk.(type) {
			case *chunkenc.HistogramChunk:
				c.header = chk.GetCounterResetHeader()
			case *chunkenc.FloatHistogramChunk:
				c.header = chk.GetCounterResetHeader()
			case *chunkenc.HistogramSTChunk:
				c.header = chk.GetCounterResetHeader()
			case *chunkenc.FloatHistogramSTChunk:
				c.header = chk.GetCounterResetHeader()
			}
			out = append(out, c)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

// stSeries are the series the round trip writes, n samples each, 15 s
// apart: start timestamps on every sample, from the middle of a chunk on
// (with unknown ones among them), or none; floats, integer and float
// histograms, and a series mixing them.
func stSeries(n int) map[string][]hsample {
	out := map[string][]hsample{}
	for i := range n {
		ts := 1_700_000_000_000 + int64(i)*15_000
		// A counter reset every 7 samples: st moves to just before it.
		reset := ts - int64(i%7)*15_000 - 1
		out["float_st"] = append(out["float_st"], hsample{st: reset, t: ts, v: float64(i % 7)})
		// Deltas: st is the previous sample's time.
		out["delta_st"] = append(out["delta_st"], hsample{st: ts - 15_000, t: ts, v: 1.5})
		late := hsample{t: ts, v: float64(i)}
		if i >= 130 && i%5 != 0 {
			late.st = -5 // start timestamps may be negative
		}
		if i == n-3 {
			late.v = math.Float64frombits(value.StaleNaN)
		}
		out["float_late_st"] = append(out["float_late_st"], late)
		out["float_no_st"] = append(out["float_no_st"], hsample{t: ts, v: float64(i)})
		out["hist_st"] = append(out["hist_st"], hsample{st: ts - int64(i%9)*15_000 - 1, t: ts, h: testHistogram(0, histogram.UnknownCounterReset, uint64(i%9+1))})
		fl := hsample{t: ts, fh: testFloatHistogram(histogram.CustomBucketsSchema, histogram.UnknownCounterReset, uint64(i+1))}
		if i >= 150 {
			fl.st = 1
		}
		out["fhist_late_st"] = append(out["fhist_late_st"], fl)
		out["hist_no_st"] = append(out["hist_no_st"], hsample{t: ts, h: testHistogram(-4, histogram.UnknownCounterReset, uint64(i+1))})
		mixed := hsample{st: ts - 1, t: ts, v: float64(i)}
		switch i % 40 {
		case 10, 11, 12:
			mixed.h = testHistogram(8, histogram.UnknownCounterReset, uint64(i))
		case 20:
			mixed.fh = testFloatHistogram(2, histogram.GaugeType, uint64(i))
		case 30:
			mixed.st = 0
		}
		out["mixed_st"] = append(out["mixed_st"], mixed)
	}
	return out
}

// withoutST is samples with every start timestamp 0.
func withoutST(samples []hsample) []hsample {
	out := slices.Clone(samples)
	for i := range out {
		out[i].st = 0
	}
	return out
}

// TestStartTimestampsRoundTrip writes samples of every kind with start
// timestamps (and series without) in commits of a few samples, and reads
// them back with their start timestamps through Select and the
// ChunkQuerier, before and after a merge. A chunk holding a start
// timestamp is in XOR2 or a histogram ST encoding, one without in XOR or
// a histogram encoding; the chunks and what their samples read back as
// are those of the same series written without start timestamps.
func TestStartTimestampsRoundTrip(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("st")
	const n = 260 // three chunks of 120 samples
	all := stSeries(n)
	for i := 0; i < n; i += 20 {
		for name, list := range all {
			appendSamples(t, ts, labels.FromStrings("__name__", name), list[i:i+20])
			// The same samples without start timestamps, for comparison.
			appendSamples(t, ts, labels.FromStrings("__name__", name+"_plain"), withoutST(list[i:i+20]))
		}
	}
	stEnc := map[chunkenc.Encoding]chunkenc.Encoding{
		chunkenc.EncXOR: chunkenc.EncXOR2, chunkenc.EncHistogram: chunkenc.EncHistogramST, chunkenc.EncFloatHistogram: chunkenc.EncFloatHistogramST,
	}
	check := func(phase string) {
		t.Helper()
		encs := map[string][]chunkenc.Encoding{}
		for name, want := range all {
			// Select reads them as it reads them without start timestamps
			// (histograms continuing the previous with their hint
			// resolved), with theirs.
			sel, selPlain := readSamples(t, ts, name), readSamples(t, ts, name+"_plain")
			require.Len(t, selPlain, len(want))
			requireSameSamples(t, selPlain, withoutST(sel))
			for i := range want {
				require.Equal(t, want[i].st, sel[i].st, "%s %s: start timestamp at %d", phase, name, want[i].t)
			}
			got, plain := readChunks(t, ts, name), readChunks(t, ts, name+"_plain")
			require.Len(t, got, len(plain), "%s %s: chunks cut where they are without start timestamps", phase, name)
			var fromChunks []hsample
			for k, c := range got {
				hasST := slices.ContainsFunc(c.samples, func(s hsample) bool { return s.st != 0 })
				want := plain[k].enc
				if hasST {
					want = stEnc[want]
				}
				require.Equal(t, want, c.enc, "%s %s chunk %d: encoding", phase, name, k)
				require.Equal(t, plain[k].header, c.header, "%s %s chunk %d: counter reset header", phase, name, k)
				requireSameSamples(t, plain[k].samples, withoutST(c.samples))
				fromChunks = append(fromChunks, c.samples...)
				encs[name] = append(encs[name], c.enc)
			}
			gotST := make([]int64, len(fromChunks))
			for i, smp := range fromChunks {
				gotST[i] = smp.st
			}
			wantST := make([]int64, len(want))
			for i, smp := range want {
				wantST[i] = smp.st
			}
			require.Equal(t, wantST, gotST, "%s %s: start timestamps from chunks", phase, name)
		}
		// Chunks of every kind, with start timestamps and without.
		require.Equal(t, []chunkenc.Encoding{chunkenc.EncXOR, chunkenc.EncXOR2, chunkenc.EncXOR2}, encs["float_late_st"], phase)
		require.Equal(t, []chunkenc.Encoding{chunkenc.EncXOR, chunkenc.EncXOR, chunkenc.EncXOR}, encs["float_no_st"], phase)
		fl := encs["fhist_late_st"]
		require.Equal(t, chunkenc.EncFloatHistogram, fl[0], phase)
		require.Equal(t, chunkenc.EncFloatHistogramST, fl[len(fl)-1], phase)
		require.Contains(t, encs["hist_st"], chunkenc.EncHistogramST, phase)
		require.NotContains(t, encs["hist_no_st"], chunkenc.EncHistogramST, phase)
		require.Contains(t, encs["mixed_st"], chunkenc.EncXOR2, phase)
		require.Contains(t, encs["mixed_st"], chunkenc.EncHistogramST, phase)
		require.Contains(t, encs["mixed_st"], chunkenc.EncFloatHistogramST, phase)
	}
	check("unmerged")
	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	check("merged")
}

// TestStartTimestampsLastWriteWins overwrites samples with other start
// timestamps (or none) across commits, in one commit, across kinds, out
// of order and after a merge: the winning write's start timestamp is the
// one read. A retried insert (the committer's retry) reads once.
func TestStartTimestampsLastWriteWins(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("lww")
	lset := labels.FromStrings("__name__", "st_lww")
	h := testHistogram(1, histogram.UnknownCounterReset, 2)
	fh := testFloatHistogram(0, histogram.UnknownCounterReset, 3)
	steps := [][]hsample{
		{{st: 1, t: 1000, v: 1}, {st: 2, t: 2000, v: 2}, {st: 3, t: 3000, h: h}, {t: 4000, v: 4}},
		{{st: 11, t: 1000, v: 1}}, // the same value, another st
		{{t: 2000, v: 2}},         // no st over one
		{{st: 30, t: 3000, v: 3}, {st: 31, t: 3000, fh: fh}}, // in one commit the later append
		{{st: 40, t: 4000, h: h}},                            // st over none, across kinds
		{{st: 5, t: 500, v: 5}},                              // out of order
	}
	for _, step := range steps {
		appendSamples(t, ts, lset, step)
	}
	want := []hsample{{st: 5, t: 500, v: 5}, {st: 11, t: 1000, v: 1}, {t: 2000, v: 2}, {st: 31, t: 3000, fh: fh}, {st: 40, t: 4000, h: h}}
	requireSameSamples(t, want, readSamples(t, ts, "st_lww"))
	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	requireSameSamples(t, want, readSamples(t, ts, "st_lww"))
	appendSamples(t, ts, lset, []hsample{{st: 12, t: 1000, h: h}, {t: 4000, v: 7}})
	want[1], want[4] = hsample{st: 12, t: 1000, h: h}, hsample{t: 4000, v: 7}
	requireSameSamples(t, want, readSamples(t, ts, "st_lww"))
	var got []hsample
	for _, c := range readChunks(t, ts, "st_lww") {
		got = append(got, c.samples...)
	}
	for i := range got {
		require.Equal(t, want[i].st, got[i].st, "chunk sample at %d", want[i].t)
	}

	// The committer's retry: one batch inserted twice reads once, and a
	// batch of commits with and without start timestamps keeps each.
	tss := ts.(*tenantStore)
	retry := labels.FromStrings("__name__", "st_retry")
	a := tss.newAppender(t.Context())
	b := tss.newAppender(t.Context())
	var wantRetry []hsample
	for i := range int64(10) {
		smp := hsample{st: 100 + i, t: 10_000 + i*1000, v: float64(i)}
		if i%3 == 0 {
			smp.h, smp.v = h, 0
		}
		_, err := a.appendAny(0, retry, smp.st, smp.t, smp.v, smp.h, smp.fh)
		require.NoError(t, err)
		// b, a later commit of the batch without start timestamps,
		// overwrites every other sample.
		if i%2 == 1 {
			_, err := b.appendAny(0, retry, 0, smp.t, -smp.v, nil, nil)
			require.NoError(t, err)
			smp = hsample{t: smp.t, v: -smp.v}
		}
		wantRetry = append(wantRetry, smp)
	}
	reqOf := func(a *appender) *commitReq {
		return &commitReq{tenant: "lww", fps: a.cols.fps, tss: a.cols.tss, vals: a.cols.vals, digits: a.cols.digits, scales: a.cols.scales,
			hists: map[bool][]string{true: a.cols.hists}[a.cols.hasHists], sts: map[bool][]int64{true: a.cols.sts}[a.cols.hasSTs], series: a.series}
	}
	require.Nil(t, reqOf(b).sts, "a commit without start timestamps sends none")
	batch := []*commitReq{reqOf(a), reqOf(b)}
	w := &insertWorker{s: s}
	require.NoError(t, w.insertOnce(batch))
	require.NoError(t, w.insertOnce(batch))
	requireSameSamples(t, wantRetry, readSamples(t, ts, "st_retry"))
	require.NoError(t, s.conn.Exec(t.Context(), "OPTIMIZE TABLE "+s.schema.table(samplesTable)+" FINAL"))
	requireSameSamples(t, wantRetry, readSamples(t, ts, "st_retry"))
}

// TestStartTimestampsMigration opens a store on a database holding the
// schema and data of the release before start timestamps (every migration
// before 5: floats and histograms, no st column): the store adds the
// column, the old samples read with unknown start timestamps, and new ones
// keep theirs.
func TestStartTimestampsMigration(t *testing.T) {
	cfg := testConfig(t)
	conn := testConn(t)
	ctx := t.Context()
	info, err := detectServer(ctx, connRunner{conn})
	require.NoError(t, err)
	old := schema{db: cfg.Database, info: info}
	var before []migration
	for _, m := range migrations {
		if m.version < 5 {
			before = append(before, m)
		}
	}
	_, err = old.migrateThrough(ctx, connRunner{conn}, before)
	require.NoError(t, err)
	has, err := old.hasSTColumn(ctx, connRunner{conn})
	require.NoError(t, err)
	require.False(t, has)
	old.decimals, err = old.hasDecimalColumns(ctx, connRunner{conn})
	require.NoError(t, err)

	// Floats and a histogram as that release's store wrote them.
	lset := labels.FromStrings("__name__", "migrated", "job", "j")
	fp, _ := fingerprint("m", lset, nil)
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT 'm', toUInt64(%d), toInt64(1000 * number + 1000), number + 0.5%s FROM system.numbers LIMIT 3",
		old.table(samplesTable), old.samplesColumns(), fp, map[bool]string{true: ", 0, -1"}[old.decimals])))
	h := testHistogram(2, histogram.UnknownCounterReset, 1)
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s, %s) SELECT 'm', toUInt64(%d), toInt64(3500), reinterpretAsFloat64(unhex('%016X'))%s, unhex('%X')",
		old.table(samplesTable), old.samplesColumns(), histColumn, fp, bits.ReverseBytes64(histMarker), map[bool]string{true: ", 0, -1"}[old.decimals], appendHistogram(nil, h))))
	require.NoError(t, conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (tenant, hour, min_ts, fingerprint, metric_name, label_names, label_values) SELECT 'm', 0, 1000, toUInt64(%d), 'migrated', ['__name__', 'job'], ['migrated', 'j']",
		old.table(seriesTable), fp)))

	s := openStore(t, cfg)
	has, err = s.schema.hasSTColumn(ctx, connRunner{conn})
	require.NoError(t, err)
	require.True(t, has)
	ts := s.ForTenant("m")
	appendSamples(t, ts, lset, []hsample{{st: 1, t: 2000, v: 9}, {st: 2, t: 4000, h: h}})
	continued := h.Copy()
	continued.CounterResetHint = histogram.NotCounterReset // as Select resolves it
	want := []hsample{{t: 1000, v: 0.5}, {st: 1, t: 2000, v: 9}, {t: 3000, v: 2.5}, {t: 3500, h: h}, {st: 2, t: 4000, h: continued}}
	requireSameSamples(t, want, readSamples(t, ts, "migrated"))
	// Migrating again is harmless, on 18.x too (no ADD COLUMN IF NOT EXISTS).
	require.NoError(t, conn.Exec(ctx, "TRUNCATE TABLE "+s.schema.table(migrationsTable)))
	_, err = s.schema.migrate(ctx, connRunner{conn})
	require.NoError(t, err)
	requireSameSamples(t, want, readSamples(t, ts, "migrated"))
}

// TestSampleRowsGroupStartTimestamps: grouping keeps each row's start
// timestamp with it, of equal times the newest part's, and a series whose
// kept rows have none gets no start timestamps at all.
func TestSampleRowsGroupStartTimestamps(t *testing.T) {
	batch := []resolved{{lset: labels.FromStrings("i", "0")}, {lset: labels.FromStrings("i", "1")}, {lset: labels.FromStrings("i", "2")}}
	r := newSampleRows(0)
	r.add(0, 1, 1, 0, 0) // series 0: one run in order, st from the second row
	r.add(0, 2, 2, 7, 0)
	r.add(1, 5, 5, 9, 0) // series 1: overwritten by a newer part without st
	r.add(1, 4, 4, 0, 0)
	r.add(1, 5, 6, 0, 1)
	r.add(2, 3, 3, 0, 0) // series 2: st only on the newer part's row
	r.add(2, 3, 4, 8, 2)
	got := r.group(batch, nil)
	require.Len(t, got, 3)
	require.Equal(t, []int64{0, 7}, got[0].sts)
	require.Equal(t, []int64{4, 5}, got[1].ts)
	require.Nil(t, got[1].sts, "no kept row has a start timestamp")
	require.Equal(t, []int64{8}, got[2].sts)
	it := got[0].Iterator(nil)
	require.Equal(t, chunkenc.ValFloat, it.Next())
	require.Equal(t, int64(0), it.AtST())
	require.Equal(t, chunkenc.ValFloat, it.Seek(2))
	require.Equal(t, int64(7), it.AtST())
}

// TestStartTimestampsEdgeValues: start timestamps of any int64 survive,
// on 18.x through the String column's trimmed bytes too.
func TestStartTimestampsEdgeValues(t *testing.T) {
	s := newTestStore(t)
	require.Equal(t, !s.schema.info.Codecs, s.schema.stBytes, "a String st column on 18.x, Int64 from 20.3")
	ts := s.ForTenant("edges")
	var want []hsample
	for i, st := range []int64{math.MinInt64, math.MaxInt64, -1, 1, 255, 256, 1 << 56, -(1 << 8), 0} {
		want = append(want, hsample{st: st, t: int64(i+1) * 1000, v: float64(i)})
	}
	appendSamples(t, ts, labels.FromStrings("__name__", "edges"), want)
	requireSameSamples(t, want, readSamples(t, ts, "edges"))
}
