package badger

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// appendSTSamples writes samples of lset, with their start timestamps, in
// one commit through AppenderV2.
func appendSTSamples(t testing.TB, s *Store, id tenancy.ID, lset labels.Labels, samples ...sample) {
	t.Helper()
	app := s.ForTenant(id).AppenderV2(context.Background())
	for _, smp := range samples {
		_, err := app.Append(0, lset, smp.st, smp.t, smp.v, smp.h, smp.fh, promstorage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// iterST returns the samples of it with their start timestamps (AtST).
func iterST(t testing.TB, it chunkenc.Iterator) []sample {
	t.Helper()
	var got []sample
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		smp := sample{st: it.AtST()}
		switch vt {
		case chunkenc.ValFloat:
			smp.t, smp.v = it.At()
		case chunkenc.ValHistogram:
			smp.t, smp.h = it.AtHistogram(nil)
		case chunkenc.ValFloatHistogram:
			smp.t, smp.fh = it.AtFloatHistogram(nil)
		}
		got = append(got, smp)
	}
	require.NoError(t, it.Err())
	return got
}

// readST reads every series of the tenant through Select.
func readST(t testing.TB, s *Store, id tenancy.ID) map[string][]sample {
	t.Helper()
	q, err := s.ForTenant(id).Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		out[set.At().Labels().Get("__name__")] = iterST(t, it)
	}
	require.NoError(t, set.Err())
	return out
}

// stChunk is one chunk ChunkQuerier returned, with its samples' start
// timestamps.
type stChunk struct {
	enc     chunkenc.Encoding
	header  chunkenc.CounterResetHeader // of histogram chunks
	samples []sample
}

// readSTChunks reads every series of the tenant through ChunkQuerier.
func readSTChunks(t testing.TB, s *Store, id tenancy.ID) map[string][]stChunk {
	t.Helper()
	q, err := s.ForTenant(id).ChunkQuerier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	out := map[string][]stChunk{}
	for set.Next() {
		name := set.At().Labels().Get("__name__")
		it := set.At().Iterator(nil)
		for it.Next() {
			m := it.At()
			c := stChunk{enc: m.Chunk.Encoding(), samples: iterST(t, m.Chunk.Iterator(nil))}
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
			out[name] = append(out[name], c)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

// requireST checks samples bit for bit (requireSamples) and their start
// timestamps.
func requireST(t testing.TB, want, got []sample, msgAndArgs ...any) {
	t.Helper()
	requireSamples(t, want, got, false, msgAndArgs...)
	wst, gst := make([]int64, len(want)), make([]int64, len(got))
	for i := range want {
		wst[i], gst[i] = want[i].st, got[i].st
	}
	require.Equal(t, wst, gst, msgAndArgs...)
}

// stSeries are the series TestStartTimestampsRoundTrip writes: n samples
// each, 15 s apart.
func stSeries(n int) map[string][]sample {
	out := map[string][]sample{}
	for i := range n {
		ts := int64(i+1) * 15000
		// A counter reset every 7 samples: st moves to just before it.
		reset := ts - int64(i%7)*15000 - 1
		out["float_st"] = append(out["float_st"], sample{st: reset, t: ts, v: float64(i % 7)})
		// Deltas: st is the previous sample's timestamp.
		out["delta_st"] = append(out["delta_st"], sample{st: ts - 15000, t: ts, v: 1.5})
		// Unknown, then known from the middle of a chunk on, one unknown
		// again, and a stale marker.
		smp := sample{t: ts, v: float64(i)}
		if i >= 13 && i != 16 && i != 20 {
			smp.st = 5
		}
		if i == n-3 {
			smp.v = math.Float64frombits(value.StaleNaN)
		}
		out["float_late_st"] = append(out["float_late_st"], smp)
		out["float_no_st"] = append(out["float_no_st"], sample{t: ts, v: float64(i)})
		h := testHistogram(0, i%9)
		out["hist_st"] = append(out["hist_st"], sample{st: ts - int64(i%9)*15000 - 1, t: ts, h: h})
		fh := testHistogram(histogramCustom, i).ToFloat(nil)
		late := sample{t: ts, fh: fh}
		if i >= 12 {
			late.st = 1
		}
		out["fhist_late_st"] = append(out["fhist_late_st"], late)
		out["hist_no_st"] = append(out["hist_no_st"], sample{t: ts, h: testHistogram(-4, i)})
	}
	return out
}

const histogramCustom = -53

// TestStartTimestampsRoundTrip writes floats, integer and float histograms
// with start timestamps (from the first sample on, or from the middle of a
// chunk on, some unknown in between) next to series without any, over
// several chunks, and reads them back through Select and ChunkQuerier with
// every st: live, after Close and reopen (snapshots), after a checkpoint
// and a crash (WAL replay). Chunks with a start timestamp are in XOR2 or the
// histogram ST encodings; chunks without keep XOR and the histogram
// encodings.
func TestStartTimestampsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	const chunk = 10
	s := openTest(t, dir, func(c *Config) { c.ChunkSamples = chunk; c.CheckpointInterval = time.Hour })
	all := stSeries(45)
	first := 25 // written before the reopen, the rest after
	write := func(s *Store, from, to int) {
		for i := from; i < to; i += 3 { // commits of 3 samples per series
			for name, list := range all {
				appendSTSamples(t, s, "a", labels.FromStrings("__name__", name), list[i:min(i+3, to)]...)
			}
		}
	}
	check := func(s *Store, n int, phase string) (headers map[string][]chunkenc.CounterResetHeader) {
		t.Helper()
		got := readST(t, s, "a")
		chks := readSTChunks(t, s, "a")
		headers = map[string][]chunkenc.CounterResetHeader{}
		for name, list := range all {
			requireST(t, list[:n], got[name], phase+" "+name+" Select")
			var fromChunks []sample
			for _, c := range chks[name] {
				hasST := slices.ContainsFunc(c.samples, func(smp sample) bool { return smp.st != 0 })
				want := []chunkenc.Encoding{chunkenc.EncXOR, chunkenc.EncHistogram, chunkenc.EncFloatHistogram}
				if hasST {
					want = []chunkenc.Encoding{chunkenc.EncXOR2, chunkenc.EncHistogramST, chunkenc.EncFloatHistogramST}
				}
				kind := 0
				switch {
				case c.samples[0].h != nil:
					kind = 1
				case c.samples[0].fh != nil:
					kind = 2
				}
				require.Equal(t, want[kind], c.enc, "%s %s: chunk encoding", phase, name)
				fromChunks = append(fromChunks, c.samples...)
				headers[name] = append(headers[name], c.header)
			}
			requireST(t, list[:n], fromChunks, phase+" "+name+" ChunkQuerier")
		}
		// Chunks of every kind, with start timestamps and without.
		require.Equal(t, chunkenc.EncXOR, chks["float_late_st"][0].enc, phase)
		require.Equal(t, chunkenc.EncXOR2, chks["float_late_st"][len(chks["float_late_st"])-1].enc, phase)
		require.Equal(t, chunkenc.EncFloatHistogram, chks["fhist_late_st"][0].enc, phase)
		require.Equal(t, chunkenc.EncHistogramST, chks["hist_st"][0].enc, phase)
		require.Contains(t, headers["hist_st"], chunkenc.CounterReset, phase)
		return headers
	}
	write(s, 0, first)
	live := check(s, first, "live")
	require.NoError(t, s.Close())

	s = openTest(t, dir, func(c *Config) { c.ChunkSamples = chunk; c.CheckpointInterval = time.Hour })
	// The heads restored from their snapshots keep their counter reset
	// headers.
	require.Equal(t, live, check(s, first, "reopened"))
	write(s, first, 35)
	require.NoError(t, s.checkpoint()) // heads snapshotted with their start timestamps
	write(s, 35, 45)                   // and more in the WAL only
	before := check(s, 45, "before crash")
	crash(t, s)

	s = openTest(t, dir, func(c *Config) { c.ChunkSamples = chunk; c.CheckpointInterval = time.Hour })
	defer s.Close()
	// The sealed chunks keep their headers. (The head after the crash
	// starts after a chunk that was in Badger, whose appender is gone: its
	// header is "unknown", for series without start timestamps too.)
	after := check(s, 45, "after crash")
	for name, h := range before {
		require.Equal(t, h[:len(h)-1], after[name][:len(h)-1], name)
	}
}

// TestStartTimestampsOutOfOrderAndLastWriteWins: out-of-order samples,
// into the head and into sealed chunks (in memory and in Badger), keep
// their start timestamps; a rewrite of a timestamp with another start
// timestamp (the same value) replaces it, in one commit too; the same
// sample with the same st is a duplicate. After a crash the WAL replay
// gives the same.
func TestStartTimestampsOutOfOrderAndLastWriteWins(t *testing.T) {
	dir := t.TempDir()
	open := func() *Store {
		return openTest(t, dir, func(c *Config) { c.ChunkSamples = 10; c.CheckpointInterval = time.Hour })
	}
	s := open()
	f := labels.FromStrings("__name__", "f")
	h := labels.FromStrings("__name__", "h")
	want := map[string]map[int64]sample{"f": {}, "h": {}}
	put := func(lset labels.Labels, samples ...sample) {
		appendSTSamples(t, s, "a", lset, samples...)
		for _, smp := range samples {
			want[lset.Get("__name__")][smp.t] = smp
		}
	}
	// Even timestamps in order, no start timestamps: 3 sealed chunks and a
	// head.
	for i := int64(0); i < 70; i += 2 {
		put(f, sample{t: i * 1000, v: float64(i)})
		put(h, sample{t: i * 1000, h: testHistogram(8, int(i))})
	}
	// Odd ones out of order with start timestamps, into sealed chunks and
	// the head.
	for _, i := range []int64{3, 1, 25, 41, 67, 61} {
		put(f, sample{st: i*1000 - 500, t: i * 1000, v: float64(i)})
		put(h, sample{st: i*1000 - 500, t: i * 1000, h: testHistogram(8, int(i))})
	}
	// The same values again with another st: last write wins; twice in
	// one commit, the last.
	put(f, sample{st: 7, t: 4000, v: 4})
	put(f, sample{st: 8, t: 4000, v: 4}, sample{st: 9, t: 4000, v: 4}, sample{st: 10, t: 68000, v: 68})
	put(h, sample{st: 11, t: 68000, h: testHistogram(8, 68)})
	// A duplicate (same st too) changes nothing.
	put(f, sample{st: 10, t: 68000, v: 68})
	sorted := func(name string) []sample {
		var out []sample
		for _, smp := range want[name] {
			out = append(out, smp)
		}
		slices.SortFunc(out, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
		return out
	}
	check := func(phase string) {
		got := readST(t, s, "a")
		chks := readSTChunks(t, s, "a")
		for _, name := range []string{"f", "h"} {
			requireST(t, sorted(name), got[name], phase+" "+name)
			var fromChunks []sample
			for _, c := range chks[name] {
				fromChunks = append(fromChunks, c.samples...)
			}
			requireST(t, sorted(name), fromChunks, phase+" "+name+" chunks")
		}
	}
	check("live")
	crash(t, s)
	s = open()
	defer s.Close()
	check("after crash")
}

// TestSTLessChunksUnchanged: sealed float chunks without start timestamps
// are stored packed (or XOR) as before, and the ST-capable encodings only
// for chunks with a start timestamp, never packed.
func TestSTLessChunksUnchanged(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.ChunkSamples = 10 })
	for i := int64(0); i < 40; i++ {
		appendSTSamples(t, s, "a", labels.FromStrings("__name__", "packed"), sample{t: i * 1000, v: float64(i)})
		appendSTSamples(t, s, "a", labels.FromStrings("__name__", "xor"), sample{t: i * 1000, v: math.Pi * float64(i)})
		appendSTSamples(t, s, "a", labels.FromStrings("__name__", "st"), sample{st: 1, t: i * 1000, v: float64(i)})
		appendSTSamples(t, s, "a", labels.FromStrings("__name__", "hist"), sample{t: i * 1000, h: testHistogram(0, int(i))})
	}
	encs := map[string][]byte{}
	err := s.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.IteratorOptions{Prefix: []byte{kindChunk}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			id, _, _, ok := parseChunkKey(it.Item().Key())
			require.True(t, ok)
			name := ""
			tn, _ := s.tenantFor("a", false)
			tn.mu.RLock()
			for _, ser := range tn.all {
				if ser.id == id {
					name = ser.lset.Get("__name__")
				}
			}
			tn.mu.RUnlock()
			require.NoError(t, it.Item().Value(func(v []byte) error {
				encs[name] = append(encs[name], v[0])
				if name == "xor" || name == "packed" {
					// The bytes are what the code before start timestamps
					// stored: the XOR chunk of the samples, or its packing.
					samples, err := decodeAny(nil, v[0], v[1:])
					require.NoError(t, err)
					require.Equal(t, sealedValue(encXOR, encodeChunks(samples, len(samples))[0].data), v)
				}
				return nil
			}))
		}
		return nil
	})
	require.NoError(t, err)
	for name, enc := range map[string]byte{"packed": encPacked, "xor": encXOR, "st": encXOR2, "hist": encHistogram} {
		require.GreaterOrEqual(t, len(encs[name]), 3, name)
		for _, e := range encs[name] {
			require.Equal(t, enc, e, name)
		}
	}
	require.NoError(t, s.Close())
}

// TestCommitRecordStartTimestamps: start timestamps round-trip through the
// commit record, in a section of their own after the histograms; a record
// without them is the record of before (the histogram section absent when
// there are no histograms).
func TestCommitRecordStartTimestamps(t *testing.T) {
	samples := []walSample{
		{id: 1, sample: sample{st: 4, t: 5, v: 1.5}},
		{id: 2, sample: sample{t: -7, h: testHistogram(8, 3)}},
		{id: 1, sample: sample{st: math.MinInt64 + 1, t: 6, v: 2}},
		{id: 3, sample: sample{st: 9, t: 8, fh: testHistogram(-53, 2).ToFloat(nil)}},
		{id: 5, sample: sample{st: -100, t: 11, v: 3}},
	}
	for _, c := range []struct {
		name    string
		samples []walSample
	}{{"with histograms", samples}, {"floats only", []walSample{samples[0], samples[2], samples[4]}}} {
		t.Run(c.name, func(t *testing.T) {
			rec := appendCommitRecord(nil, 7, nil, pendingOf(c.samples))
			_, _, got, err := decodeCommitRecord(rec)
			require.NoError(t, err)
			var want, gotS []sample
			for i := range c.samples {
				require.Equal(t, c.samples[i].id, got[i].id)
				want, gotS = append(want, c.samples[i].sample), append(gotS, got[i].sample)
			}
			requireST(t, want, gotS)

			// The record without start timestamps is the one before them,
			// the section follows it.
			plain := slices.Clone(c.samples)
			for i := range plain {
				plain[i].st = 0
			}
			old := appendCommitRecord(nil, 7, nil, pendingOf(plain))
			section := old
			if !slices.ContainsFunc(plain, func(s walSample) bool { return s.h != nil || s.fh != nil }) {
				section = binary.AppendUvarint(slices.Clone(old), 0) // no histograms
			}
			require.Equal(t, section, rec[:len(section)])
			var nst int
			for _, s := range c.samples {
				if s.st != 0 {
					nst++
				}
			}
			require.Equal(t, byte(nst), rec[len(section)])
			_, _, got, err = decodeCommitRecord(old)
			require.NoError(t, err)
			for _, s := range got {
				require.Zero(t, s.st)
			}

			// Truncated records are corrupt, never a panic; a cut at the
			// end of a section is a valid older record.
			for n := len(rec) - 1; n > 0; n-- {
				if _, _, got, err := decodeCommitRecord(rec[:n]); err == nil {
					require.LessOrEqual(t, n, len(section), fmt.Sprint(n))
					for _, s := range got {
						require.Zero(t, s.st)
					}
				}
			}
		})
	}
}

// BenchmarkAppendStartTimestamps is BenchmarkAppend through AppenderV2
// with a start timestamp on every sample (a counter's process start, as
// OTLP and remote write 2.0 send it): XOR2 heads, the WAL's start
// timestamp section.
func BenchmarkAppendStartTimestamps(b *testing.B) {
	n := benchSeriesCount()
	series := benchSeries(n)
	values := make([]float64, n)
	s := openTest(b, b.TempDir(), nil)
	defer s.Close()
	ts := s.ForTenant("bench")
	const start = 1_700_000_000_000
	round := func(t int64) {
		const batch, workers = 2000, 2
		var wg sync.WaitGroup
		errs := make([]error, workers)
		per := (len(series) + workers - 1) / workers
		for w := range workers {
			lo, hi := w*per, min((w+1)*per, len(series))
			wg.Go(func() {
				for from := lo; from < hi; from += batch {
					app := ts.AppenderV2(context.Background())
					for i := from; i < min(from+batch, hi); i++ {
						if _, err := app.Append(0, series[i], start, start+t, values[i], nil, nil, promstorage.AOptions{}); err != nil {
							errs[w] = err
							return
						}
					}
					errs[w] = app.Commit()
					if errs[w] != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(b, err)
		}
	}
	round(0)
	r := rand.New(rand.NewPCG(1, 2))
	model := valueModels["node"]
	rounds := 0
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		rounds++
		b.StopTimer()
		for i := range values {
			values[i] = model(r, i, values[i])
		}
		b.StartTimer()
		c := cpuTime(b)
		round(int64(rounds) * 15000)
		cpu += cpuTime(b) - c
	}
	b.ReportMetric(float64(rounds*n)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(rounds*n), "cpu-ns/sample")
}
