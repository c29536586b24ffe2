package badger

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"sync"

	bdb "github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// querier reads one tenant's data in [mint, maxt]. Chunks are read lazily,
// per series, when an iterator is asked for.
type querier struct {
	st         *Store
	t          *tenant // nil: the tenant has no data
	mint, maxt int64

	mu sync.Mutex // guards rd
	rd reader
}

func (q *querier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.discardLocked()
	return nil
}

func (q *querier) discardLocked() { q.rd.discard() }

// matching returns the tenant's series that match ms and have data in the
// querier's range, sorted by labels.
func (q *querier) matching(ms []*labels.Matcher) []*series {
	if q.t == nil {
		return nil
	}
	q.t.mu.RLock()
	cand := q.t.selectLocked(ms)
	out := make([]*series, 0, len(cand))
	for _, s := range cand {
		if s.overlaps(q.mint, q.maxt) {
			out = append(out, s)
		}
	}
	q.t.mu.RUnlock()
	return out
}

func sortByLabels(list []*series) {
	slices.SortFunc(list, func(a, b *series) int { return labels.Compare(a.lset, b.lset) })
}

func (q *querier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	list := q.matching(ms) // in series id order
	if sortSeries || hints != nil && hints.Limit > 0 {
		sortByLabels(list)
	}
	if hints != nil && hints.Limit > 0 && len(list) > hints.Limit {
		list = list[:hints.Limit]
	}
	mint, maxt := q.mint, q.maxt
	if hints != nil && hints.Start != 0 && hints.End != 0 {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return &seriesSet{ctx: ctx, q: q, list: list, i: -1, mint: mint, maxt: maxt, noValues: valuesUnused(hints)}
}

// valuesUnused reports whether the engine's use of a Select's samples,
// which hints name, reads only which samples exist and when: the
// selector is directly under one of these (through parentheses and unary
// minus, which keep samples), whose answers do not depend on a value
// other than a stale marker's. Packed chunks hold no NaN, stale markers
// included, so their values need not be decoded; every other chunk is
// read whole.
func valuesUnused(hints *promstorage.SelectHints) bool {
	if hints == nil {
		return false
	}
	switch hints.Func {
	case "count", "group", "absent":
		return hints.Range == 0
	case "count_over_time", "present_over_time", "absent_over_time":
		return true
	}
	return false
}

// reader is one Badger snapshot and iterator over a tenant's chunks,
// reused (by Seek) for every series it reads.
type reader struct {
	txn *bdb.Txn
	it  *bdb.Iterator
	seq uint64 // Store.diskSeq before txn was opened
}

func (r *reader) discard() {
	if r.it != nil {
		r.it.Close()
		r.it = nil
	}
	if r.txn != nil {
		r.txn.Discard()
		r.txn = nil
	}
}

// ensure opens a snapshot at least as new as seq, the diskSeq of the
// series about to be read.
func (r *reader) ensure(st *Store, tenant uint32, seq uint64) {
	if r.txn == nil || seq > r.seq {
		r.discard()
		r.seq = st.diskSeq.Load()
		r.txn = st.db.NewTransaction(false)
		r.it = r.txn.NewIterator(bdb.IteratorOptions{Prefix: tenantPrefix(kindChunk, tenant), PrefetchValues: false})
	}
}

// memPart copies the in-memory chunks of ser (unflushed chunks and head),
// oldest first, with the diskSeq its sealed chunks need and whether any
// sealed chunk on disk can reach mint.
func memPart(ser *series, mint int64) (mem []memChunk, seq uint64, needDisk bool) {
	ser.mu.Lock()
	defer ser.mu.Unlock()
	if n := len(ser.unflushed) + 1; n > 1 {
		mem = make([]memChunk, 0, n)
	}
	mem = append(mem, ser.unflushed...) // immutable
	if h := ser.head; h != nil && h.numSamples() > 0 {
		mem = append(mem, memChunk{mint: h.mint, maxt: h.maxt, enc: h.enc, data: h.bytesCopy()})
	}
	// Sealed chunks on disk end at or before diskMaxT (unflushed ones are
	// in mem): a range that starts later needs no Badger read at all.
	return mem, ser.diskSeq, !ser.diskKnown || ser.diskMaxT >= mint
}

// diskChunks calls fn with each sealed chunk of ser in Badger that
// overlaps [mint, maxt] and ends before memMin (the first in-memory
// chunk), oldest first. data is valid only during fn. It stops at fn's
// first error and returns it.
func (q *querier) diskChunks(rd *reader, ser *series, seq uint64, mint, maxt, memMin int64, fn func(cmin, cmax int64, enc byte, data []byte) error) error {
	rd.ensure(q.st, q.t.num, seq)
	prefix := seriesKey(kindChunk, q.t.num, ser.id)
	it := rd.it
	for it.Seek(chunkKey(q.t.num, ser.id, 0, mint)[:21]); it.ValidForPrefix(prefix); it.Next() {
		_, cmin, cmax, ok := parseChunkKey(it.Item().Key())
		if !ok || cmin > maxt || cmin >= memMin || cmax >= memMin {
			break
		}
		err := it.Item().Value(func(v []byte) error {
			if len(v) > 1 {
				return fn(cmin, cmax, v[0], v[1:])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// chunksFor returns the chunks of ser overlapping [mint, maxt], oldest first.
// The in-memory part (unflushed chunks and head) is copied first; sealed
// chunks are then read from a Badger snapshot at least as new as that copy,
// and those the copy already holds are skipped.
func (q *querier) chunksFor(ser *series, mint, maxt int64) ([]memChunk, error) {
	mem, seq, needDisk := memPart(ser, mint)
	memMin := int64(math.MaxInt64)
	if len(mem) > 0 {
		memMin = mem[0].mint
	}
	var out []memChunk
	if needDisk {
		q.mu.Lock()
		err := q.diskChunks(&q.rd, ser, seq, mint, maxt, memMin, func(cmin, cmax int64, enc byte, data []byte) error {
			out = append(out, memChunk{mint: cmin, maxt: cmax, enc: enc, data: bytes.Clone(data)})
			return nil
		})
		q.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	for _, c := range mem {
		if c.maxt >= mint && c.mint <= maxt {
			out = append(out, c)
		}
	}
	return out, nil
}

// floatSeries holds the float samples of one series decoded into slices,
// which sampleIterator walks (and binary-searches) without a chunk
// iterator per chunk.
type floatSeries struct {
	ts  []int64
	vs  []float64
	sts []int64 // nil while no sample has a start timestamp

	xor      [2]chunkReader // encXOR, encXOR2
	mem      *floatSeries   // the in-memory chunks' samples, while loading
	noValues bool           // leave the values of packed chunks 0
}

// appendFrom appends the samples of o.
func (f *floatSeries) appendFrom(o *floatSeries) {
	if o.sts != nil && f.sts == nil {
		f.sts = make([]int64, len(f.ts), len(f.ts)+len(o.ts))
	}
	if f.sts != nil {
		if o.sts != nil {
			f.sts = append(f.sts, o.sts...)
		} else {
			f.sts = append(f.sts, make([]int64, len(o.ts))...)
		}
	}
	f.ts, f.vs = append(f.ts, o.ts...), append(f.vs, o.vs...)
}

func (f *floatSeries) reset() {
	f.ts, f.vs, f.sts = f.ts[:0], f.vs[:0], nil
}

// errNotFloats stops a load at the first chunk of histograms.
var errNotFloats = errors.New("not a float chunk")

// add appends the samples of one float chunk; errNotFloats for any other.
func (f *floatSeries) add(enc byte, data []byte) error {
	switch enc {
	case encPacked:
		n := len(f.ts)
		var err error
		f.ts, f.vs, err = unpackFloatsOf(f.ts, f.vs, data, !f.noValues)
		if f.sts != nil {
			f.sts = append(f.sts, make([]int64, len(f.ts)-n)...)
		}
		return err
	case encXOR, encXOR2:
		r := &f.xor[0]
		if enc == encXOR2 {
			r = &f.xor[1]
		}
		it := r.iterator(enc, data)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if enc == encXOR2 {
				if st := it.AtST(); st != 0 && f.sts == nil {
					f.sts = make([]int64, len(f.ts), cap(f.ts))
				}
			}
			if f.sts != nil {
				f.sts = append(f.sts, it.AtST())
			}
			f.ts, f.vs = append(f.ts, t), append(f.vs, v)
		}
		return it.Err()
	}
	return errNotFloats
}

// loadFloats decodes the samples of ser in [mint, maxt] into f when every
// chunk holding them is a float chunk, and returns the range of f's
// slices in [mint, maxt]; ok is false for a series with histograms in
// range, which the chunk path reads.
func (q *querier) loadFloats(rd *reader, f *floatSeries, ser *series, mint, maxt int64) (lo, hi int, ok bool, err error) {
	// The in-memory chunks first, decoded under the series' lock (the
	// appender changes the head in place), then the sealed chunks from a
	// snapshot at least as new, before them.
	if f.mem == nil {
		f.mem = &floatSeries{}
	}
	m := f.mem
	m.reset()
	memMin := int64(math.MaxInt64)
	ser.mu.Lock()
	for _, c := range ser.unflushed {
		memMin = min(memMin, c.mint)
		if err == nil && c.maxt >= mint && c.mint <= maxt {
			err = m.add(c.enc, c.data)
		}
	}
	if h := ser.head; h != nil && h.numSamples() > 0 {
		memMin = min(memMin, h.mint)
		if err == nil && h.maxt >= mint && h.mint <= maxt {
			err = m.add(h.enc, h.chunk.Bytes())
		}
	}
	seq := ser.diskSeq
	// Sealed chunks on disk end at or before diskMaxT (unflushed ones are
	// in memory): a range that starts later needs no Badger read at all.
	needDisk := !ser.diskKnown || ser.diskMaxT >= mint
	ser.mu.Unlock()
	f.reset()
	if err == nil && needDisk {
		err = q.diskChunks(rd, ser, seq, mint, maxt, memMin, func(_, _ int64, enc byte, data []byte) error {
			return f.add(enc, data)
		})
	}
	if errors.Is(err, errNotFloats) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	f.appendFrom(m)
	lo, _ = slices.BinarySearch(f.ts, mint)
	hi = len(f.ts)
	if maxt < math.MaxInt64 {
		hi, _ = slices.BinarySearch(f.ts, maxt+1)
	}
	return lo, max(lo, hi), true, nil
}

type seriesSet struct {
	ctx        context.Context
	q          *querier
	list       []*series
	i          int
	mint, maxt int64
	err        error
	noValues   bool          // valuesUnused
	slab       []seriesEntry // allocated a few hundred at a time
}

func (s *seriesSet) Next() bool {
	if s.err != nil {
		return false
	}
	s.i++
	if s.i%1000 == 0 {
		if err := s.ctx.Err(); err != nil {
			s.err = err
			return false
		}
	}
	return s.i < len(s.list)
}

func (s *seriesSet) At() promstorage.Series {
	if len(s.slab) == 0 {
		s.slab = make([]seriesEntry, min(256, max(1, len(s.list)-s.i)))
	}
	e := &s.slab[0]
	s.slab = s.slab[1:]
	*e = seriesEntry{q: s.q, ser: s.list[s.i], mint: s.mint, maxt: s.maxt, noValues: s.noValues}
	return e
}

func (s *seriesSet) Err() error                        { return s.err }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type seriesEntry struct {
	q          *querier
	ser        *series
	mint, maxt int64
	noValues   bool // packed chunks' values are left 0
}

func (e *seriesEntry) Labels() labels.Labels { return e.ser.lset }

func (e *seriesEntry) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	si, ok := it.(*sampleIterator)
	if !ok {
		si = &sampleIterator{}
	}
	si.fs.noValues = e.noValues
	e.q.mu.Lock()
	lo, hi, floats, err := e.q.loadFloats(&e.q.rd, &si.fs, e.ser, e.mint, e.maxt)
	e.q.mu.Unlock()
	if err == nil && floats {
		si.resetFloats(lo, hi)
		return si
	}
	var chks []memChunk
	if err == nil {
		chks, err = e.q.chunksFor(e.ser, e.mint, e.maxt)
	}
	si.reset(chks, e.mint, e.maxt, err)
	return si
}

// chunkReader iterates the chunks of one of Prometheus' encodings, reusing
// one chunk and one iterator across them.
type chunkReader struct {
	c  chunkenc.Chunk
	it chunkenc.Iterator
}

func (r *chunkReader) iterator(enc byte, data []byte) chunkenc.Iterator {
	if r.c == nil {
		// Only the six encodings sampleIterator hands here, all known.
		r.c, _ = chunkenc.FromData(chunkenc.Encoding(enc), data)
	} else {
		r.c.Reset(data)
	}
	r.it = r.c.Iterator(r.it)
	return r.it
}

// sampleIterator walks a series' samples in [mint, maxt]: the decoded
// floats of fs when every chunk holds floats (floats set), otherwise its
// chunks in order, yielding floats, histograms or float histograms as
// they hold them.
type sampleIterator struct {
	// The float path: fs.ts[li] is the current sample, lhi the end.
	floats bool
	fs     floatSeries
	li     int
	lhi    int

	chunks     []memChunk
	next       int
	cur        chunkenc.Iterator
	readers    [encFloatHistogramST + 1]chunkReader // by encoding byte, for Prometheus' encodings
	list       storage.FloatIterator
	lfs        floatSeries // decoded float chunk of the chunk path
	mint, maxt int64
	st, t      int64
	v          float64
	vt         chunkenc.ValueType // of the current sample
	err        error
	done       bool
}

// resetFloats makes it iterate fs[lo:hi].
func (it *sampleIterator) resetFloats(lo, hi int) {
	it.floats, it.li, it.lhi = true, lo-1, hi
	it.chunks, it.cur, it.vt, it.err, it.done = nil, nil, chunkenc.ValNone, nil, false
}

func (it *sampleIterator) reset(chks []memChunk, mint, maxt int64, err error) {
	it.floats = false
	it.chunks, it.next, it.cur, it.vt = chks, 0, nil, chunkenc.ValNone
	it.mint, it.maxt, it.err, it.done = mint, maxt, err, err != nil
}

func (it *sampleIterator) Next() chunkenc.ValueType {
	if it.floats {
		if it.li+1 < it.lhi {
			it.li++
			it.t, it.v, it.vt = it.fs.ts[it.li], it.fs.vs[it.li], chunkenc.ValFloat
			return chunkenc.ValFloat
		}
		it.li, it.vt = it.lhi, chunkenc.ValNone
		return chunkenc.ValNone
	}
	return it.nextChunked()
}

func (it *sampleIterator) nextChunked() chunkenc.ValueType {
	for !it.done {
		if it.cur == nil {
			if it.next >= len(it.chunks) {
				it.done = true
				break
			}
			c := it.chunks[it.next]
			it.next++
			switch c.enc {
			case encXOR, encHistogram, encFloatHistogram, encXOR2, encHistogramST, encFloatHistogramST:
				it.cur = it.readers[c.enc].iterator(c.enc, c.data)
			default:
				it.lfs.reset()
				if err := it.lfs.add(c.enc, c.data); err != nil {
					it.err, it.done = err, true
					break
				}
				it.list.Reset(it.lfs.ts, it.lfs.vs, it.lfs.sts)
				it.cur = &it.list
			}
			if it.done {
				break
			}
		}
		vt := it.cur.Next()
		if vt == chunkenc.ValNone {
			if err := it.cur.Err(); err != nil {
				it.err, it.done = err, true
				break
			}
			it.cur = nil
			continue
		}
		var t int64
		var v float64
		if vt == chunkenc.ValFloat {
			t, v = it.cur.At()
		} else {
			t = it.cur.AtT()
		}
		if t < it.mint {
			continue
		}
		if t > it.maxt {
			it.done = true
			break
		}
		it.st, it.t, it.v, it.vt = it.cur.AtST(), t, v, vt
		return vt
	}
	it.vt = chunkenc.ValNone
	return chunkenc.ValNone
}

func (it *sampleIterator) Seek(t int64) chunkenc.ValueType {
	if it.floats {
		if it.vt == chunkenc.ValFloat && it.t >= t {
			return chunkenc.ValFloat
		}
		i := it.li + 1
		if i >= it.lhi {
			it.li, it.vt = it.lhi, chunkenc.ValNone
			return chunkenc.ValNone
		}
		ts := it.fs.ts[:it.lhi]
		// The next few samples first: engines mostly seek a step ahead.
		for end := min(i+4, len(ts)); i < end && ts[i] < t; i++ {
		}
		if i < len(ts) && ts[i] < t {
			j, _ := slices.BinarySearch(ts[i:], t)
			i += j
		}
		if i >= len(ts) {
			it.li, it.vt = it.lhi, chunkenc.ValNone
			return chunkenc.ValNone
		}
		it.li = i
		it.t, it.v, it.vt = ts[i], it.fs.vs[i], chunkenc.ValFloat
		return chunkenc.ValFloat
	}
	if it.done {
		return chunkenc.ValNone
	}
	if it.cur != nil && it.t >= t {
		return it.vt
	}
	// Skip whole chunks that end before t.
	if it.cur == nil || it.next > 0 && it.chunks[it.next-1].maxt < t {
		for it.next < len(it.chunks) && it.chunks[it.next].maxt < t {
			it.next++
		}
		it.cur = nil
	}
	for {
		vt := it.nextChunked()
		if vt == chunkenc.ValNone || it.t >= t {
			return vt
		}
	}
}

func (it *sampleIterator) At() (int64, float64) { return it.t, it.v }

// AtHistogram returns the current integer histogram (the chunk's own
// iterator decodes it into h when h is not nil).
func (it *sampleIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	if it.vt != chunkenc.ValHistogram {
		return it.t, nil
	}
	return it.cur.AtHistogram(h)
}

// AtFloatHistogram returns the current histogram as a float histogram,
// an integer one converted.
func (it *sampleIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	if it.vt != chunkenc.ValHistogram && it.vt != chunkenc.ValFloatHistogram {
		return it.t, nil
	}
	return it.cur.AtFloatHistogram(fh)
}
func (it *sampleIterator) AtT() int64 { return it.t }

func (it *sampleIterator) AtST() int64 {
	if it.floats {
		if it.fs.sts == nil || it.li < 0 || it.li >= it.lhi {
			return 0
		}
		return it.fs.sts[it.li]
	}
	return it.st
}

func (it *sampleIterator) Err() error { return it.err }

// LabelValues returns the sorted values of name among the tenant's series
// that match ms and have data in range.
func (q *querier) LabelValues(_ context.Context, name string, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.t == nil || name == tenancy.Label {
		return nil, nil, nil
	}
	var vals []string
	if len(ms) == 0 {
		q.t.mu.RLock()
		for v, list := range q.t.postings[name] {
			for _, s := range list {
				if s.overlaps(q.mint, q.maxt) {
					vals = append(vals, v)
					break
				}
			}
		}
		q.t.mu.RUnlock()
	} else {
		vals = q.labelValuesMatching(name, ms)
	}
	sort.Strings(vals)
	vals, _ = hints.ApplyLimit(vals)
	return vals, nil, nil
}

// labelValuesMatching returns the values of name among the series matching
// ms in range. With fewer values than matching series (a job or region
// label), each value's postings are intersected with the matching series,
// stopping at the first common one; otherwise the matching series' labels
// are read.
func (q *querier) labelValuesMatching(name string, ms []*labels.Matcher) []string {
	matched := q.matching(ms) // sorted by id
	var vals []string
	q.t.mu.RLock()
	postings := q.t.postings[name]
	if len(postings) < len(matched) {
		for v, list := range postings {
			if intersects(list, matched) {
				vals = append(vals, v)
			}
		}
		q.t.mu.RUnlock()
		return vals
	}
	q.t.mu.RUnlock()
	set := map[string]struct{}{}
	for _, s := range matched {
		if v := s.lset.Get(name); v != "" {
			set[v] = struct{}{}
		}
	}
	for v := range set {
		vals = append(vals, v)
	}
	return vals
}

// intersects reports whether two lists sorted by id share a series. It
// walks the shorter list and binary-searches the longer one from where the
// previous search ended.
func intersects(a, b []*series) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	lo := 0
	for _, s := range a {
		lo += sort.Search(len(b)-lo, func(i int) bool { return b[lo+i].id >= s.id })
		if lo == len(b) {
			return false
		}
		if b[lo].id == s.id {
			return true
		}
	}
	return false
}

// LabelNames returns the sorted label names of the tenant's series that
// match ms and have data in range.
func (q *querier) LabelNames(_ context.Context, hints *promstorage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.t == nil {
		return nil, nil, nil
	}
	var names []string
	if len(ms) == 0 {
		q.t.mu.RLock()
	names:
		for name, vals := range q.t.postings {
			for _, list := range vals {
				for _, s := range list {
					if s.overlaps(q.mint, q.maxt) {
						names = append(names, name)
						continue names
					}
				}
			}
		}
		q.t.mu.RUnlock()
	} else {
		set := map[string]struct{}{}
		for _, s := range q.matching(ms) {
			s.lset.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
		}
		for n := range set {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	names, _ = hints.ApplyLimit(names)
	return names, nil, nil
}

// chunkQuerier serves the same selection as encoded chunks, for remote read.
type chunkQuerier struct{ *querier }

func (q chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	list := q.matching(ms) // in series id order
	if sortSeries || hints != nil && hints.Limit > 0 {
		sortByLabels(list)
	}
	if hints != nil && hints.Limit > 0 && len(list) > hints.Limit {
		list = list[:hints.Limit]
	}
	return &chunkSeriesSet{seriesSet{ctx: ctx, q: q.querier, list: list, i: -1, mint: q.mint, maxt: q.maxt}}
}

type chunkSeriesSet struct{ seriesSet }

func (s *chunkSeriesSet) At() promstorage.ChunkSeries {
	return &chunkSeriesEntry{seriesEntry{q: s.q, ser: s.list[s.i], mint: s.mint, maxt: s.maxt}}
}

type chunkSeriesEntry struct{ seriesEntry }

func (e *chunkSeriesEntry) Iterator(chunks.Iterator) chunks.Iterator {
	chks, err := e.q.chunksFor(e.ser, e.mint, e.maxt)
	if err != nil {
		return storage.ErrChunkIterator(err)
	}
	metas := make([]chunks.Meta, 0, len(chks))
	for _, c := range chks {
		var chk chunkenc.Chunk
		switch c.enc {
		case encXOR, encHistogram, encFloatHistogram, encXOR2, encHistogramST, encFloatHistogramST:
			// Prometheus' own encodings go out as they are.
			var err error
			if chk, err = chunkenc.FromData(chunkenc.Encoding(c.enc), c.data); err != nil {
				return storage.ErrChunkIterator(err)
			}
		default:
			samples, err := decodeAny(nil, c.enc, c.data)
			if err != nil {
				return storage.ErrChunkIterator(err)
			}
			x := chunkenc.NewXORChunk()
			x.Reset(encodeChunks(samples, len(samples))[0].data)
			chk = x
		}
		metas = append(metas, chunks.Meta{MinTime: c.mint, MaxTime: c.maxt, Chunk: chk})
	}
	return promstorage.NewListChunkSeriesIterator(metas...)
}
