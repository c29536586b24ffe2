package otlp

import (
	"encoding/binary"
	"math"
)

// The first pass of the fast converter: reading the request. Every field
// it does not know, every field of a kind it does not handle (histograms,
// summaries, array and map attribute values, entity references, the
// deprecated instrumentation-library fields) and every repeated singular
// message ends it with false.

func (st *fastState) readResourceMetrics(b []byte) bool {
	if !st.inBudget() {
		return false
	}
	st.res = append(st.res, fastRes{kv0: len(st.kvs), kv1: len(st.kvs), sc0: len(st.scopes), minTs: math.MaxUint64})
	ri := len(st.res) - 1
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1: // resource
			if !r.check(wt, wireLen) || st.res[ri].haveRes {
				return false
			}
			st.res[ri].haveRes = true
			k0 := len(st.kvs)
			if b := r.bytes(); r.bad || !st.readResource(b) {
				return false
			}
			st.res[ri].kv0, st.res[ri].kv1 = k0, len(st.kvs)
		case 2: // scope_metrics
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readScopeMetrics(b, ri) {
				return false
			}
		case 3: // schema_url
			if !r.check(wt, wireLen) {
				return false
			}
			r.bytes()
		default:
			return false
		}
	}
	st.res[ri].sc1 = len(st.scopes)
	return !r.bad
}

func (st *fastState) readResource(b []byte) bool {
	r := wireReader{b: b}
	k0 := len(st.kvs)
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1: // attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 2: // dropped_attributes_count
			if !r.check(wt, wireVarint) {
				return false
			}
			r.varint()
		default: // entity_refs and unknown fields
			return false
		}
	}
	return !r.bad && uniqueKeys(st.kvs[k0:])
}

func (st *fastState) readScopeMetrics(b []byte, ri int) bool {
	if !st.inBudget() {
		return false
	}
	st.scopes = append(st.scopes, fastScope{kv0: len(st.kvs), kv1: len(st.kvs), m0: len(st.metrics)})
	si := len(st.scopes) - 1
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1: // scope
			if !r.check(wt, wireLen) || st.scopes[si].haveScope {
				return false
			}
			st.scopes[si].haveScope = true
			if b := r.bytes(); r.bad || !st.readScope(b, si) {
				return false
			}
		case 2: // metrics
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readMetric(b, ri) {
				return false
			}
		case 3: // schema_url
			if !r.check(wt, wireLen) {
				return false
			}
			st.scopes[si].schemaURL = alias(r.bytes())
		default:
			return false
		}
	}
	st.scopes[si].m1 = len(st.metrics)
	return !r.bad
}

func (st *fastState) readScope(b []byte, si int) bool {
	r := wireReader{b: b}
	k0 := len(st.kvs)
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1:
			if !r.check(wt, wireLen) {
				return false
			}
			st.scopes[si].name = alias(r.bytes())
		case 2:
			if !r.check(wt, wireLen) {
				return false
			}
			st.scopes[si].version = alias(r.bytes())
		case 3:
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 4: // dropped_attributes_count
			if !r.check(wt, wireVarint) {
				return false
			}
			r.varint()
		default:
			return false
		}
	}
	st.scopes[si].kv0, st.scopes[si].kv1 = k0, len(st.kvs)
	return !r.bad && uniqueKeys(st.kvs[k0:])
}

func (st *fastState) readMetric(b []byte, ri int) bool {
	st.metrics = append(st.metrics, fastMetric{})
	mi := len(st.metrics) - 1
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1, 2, 3: // name, description, unit
			if !r.check(wt, wireLen) {
				return false
			}
			s := alias(r.bytes())
			switch n {
			case 1:
				st.metrics[mi].name = s
			case 2:
				st.metrics[mi].desc = s
			default:
				st.metrics[mi].unit = s
			}
		case 5, 7, 9, 10, 11: // gauge, sum, histogram, exponential_histogram, summary
			if !r.check(wt, wireLen) || st.metrics[mi].kind != 0 {
				return false
			}
			st.metrics[mi].kind = dataKind(n)
			st.metrics[mi].p0 = len(st.points)
			if b := r.bytes(); r.bad || !st.readData(b, mi, ri) {
				return false
			}
			st.metrics[mi].p1 = len(st.points)
		case 12: // metadata: read (pdata does) and dropped (the converter does)
			if !r.check(wt, wireLen) {
				return false
			}
			k0 := len(st.kvs)
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
			clear(st.kvs[k0:])
			st.kvs = st.kvs[:k0]
		default: // unknown fields
			return false
		}
	}
	m := &st.metrics[mi]
	switch {
	case r.bad, m.kind == 0, m.p1 == m.p0:
		return false // the converter reports these
	case m.kind != fastGauge && m.kind != fastSummary && m.temporality != 2:
		return false // delta (or unspecified) temporality: the upstream path decides
	}
	return true
}

// dataKind is the kind of Metric's data field n: 5, 7, 9, 10 or 11.
func dataKind(n int32) uint8 {
	switch n {
	case 5:
		return fastGauge
	case 7:
		return fastSum
	case 9:
		return fastHistogram
	case 10:
		return fastExponential
	}
	return fastSummary
}

// readData reads the data of metric mi (a Gauge, Sum, Histogram,
// ExponentialHistogram or Summary, as its kind says): its points, and the
// aggregation_temporality of those that have one and a Sum's is_monotonic.
func (st *fastState) readData(b []byte, mi, ri int) bool {
	kind := st.metrics[mi].kind
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch {
		case n == 1:
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readDataPoint(b, kind, ri) {
				return false
			}
		case n == 2 && kind != fastGauge && kind != fastSummary:
			if !r.check(wt, wireVarint) {
				return false
			}
			st.metrics[mi].temporality = int32(r.varint())
		case n == 3 && kind == fastSum:
			if !r.check(wt, wireVarint) {
				return false
			}
			st.metrics[mi].monotonic = r.varint() != 0
		default:
			return false
		}
	}
	return !r.bad
}

// readDataPoint reads one data point of a metric of kind.
func (st *fastState) readDataPoint(b []byte, kind uint8, ri int) bool {
	switch kind {
	case fastHistogram:
		return st.readHistogramPoint(b, ri)
	case fastExponential:
		return st.readExponentialPoint(b, ri)
	case fastSummary:
		return st.readSummaryPoint(b, ri)
	}
	return st.readPoint(b, ri)
}

// readHistogramPoint reads a HistogramDataPoint. As pdata, a packed
// bucket_counts or explicit_bounds replaces the values before it, an
// unpacked one appends.
func (st *fastState) readHistogramPoint(b []byte, ri int) bool {
	p := fastPoint{kv0: len(st.kvs), ex0: len(st.exs), bc0: len(st.counts), eb0: len(st.bounds)}
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 9: // attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 2, 3, 4, 5, 11, 12: // start_time_unix_nano, time_unix_nano, count, sum, min, max
			if !r.check(wt, wireI64) {
				return false
			}
			v := r.fixed64()
			switch n {
			case 2:
				p.st = v
			case 3:
				p.t = v
			case 4:
				p.count = v
			case 5:
				p.v, p.hasSum = math.Float64frombits(v), true
			}
		case 6, 7: // bucket_counts, explicit_bounds
			var vs []byte
			switch wt {
			case wireLen:
				vs = r.bytes()
				if r.bad || len(vs)%8 != 0 {
					return false
				}
				if n == 6 {
					st.counts = st.counts[:p.bc0]
				} else {
					st.bounds = st.bounds[:p.eb0]
				}
			case wireI64:
				if r.pos+8 > len(r.b) {
					return false
				}
				vs = r.b[r.pos : r.pos+8]
				r.pos += 8
			default:
				return false
			}
			for i := 0; i < len(vs); i += 8 {
				v := binary.LittleEndian.Uint64(vs[i:])
				if n == 6 {
					st.counts = append(st.counts, v)
				} else {
					st.bounds = append(st.bounds, math.Float64frombits(v))
				}
			}
		case 8: // exemplars
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readExemplar(b) {
				return false
			}
		case 10: // flags
			if !r.check(wt, wireVarint) {
				return false
			}
			p.flags = uint32(r.varint())
		default:
			return false
		}
	}
	if r.bad {
		return false
	}
	p.kv1, p.ex1, p.bc1, p.eb1 = len(st.kvs), len(st.exs), len(st.counts), len(st.bounds)
	return st.addPoint(p, ri)
}

func (st *fastState) readExponentialPoint(b []byte, ri int) bool {
	p := fastPoint{kv0: len(st.kvs), ex0: len(st.exs)}
	havePos, haveNeg := false, false
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1: // attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 2, 3, 4, 5, 7, 12, 13, 14: // start, time, count, sum, zero_count, min, max, zero_threshold
			if !r.check(wt, wireI64) {
				return false
			}
			v := r.fixed64()
			switch n {
			case 2:
				p.st = v
			case 3:
				p.t = v
			case 4:
				p.count = v
			case 5:
				p.v, p.hasSum = math.Float64frombits(v), true
			case 7:
				p.zeroCount = v
			}
		case 6: // scale, sint32
			if !r.check(wt, wireVarint) {
				return false
			}
			num := r.varint()
			p.scale = int32(uint32(num>>1) ^ uint32(int32((num&1)<<31)>>31))
		case 8, 9: // positive, negative
			if !r.check(wt, wireLen) {
				return false
			}
			if (n == 8 && havePos) || (n == 9 && haveNeg) {
				return false
			}
			b := r.bytes()
			if r.bad {
				return false
			}
			start := len(st.counts)
			off, ok := st.readBuckets(b)
			if !ok {
				return false
			}
			if n == 8 {
				havePos, p.posOff, p.pb0, p.pb1 = true, off, start, len(st.counts)
			} else {
				haveNeg, p.negOff, p.nb0, p.nb1 = true, off, start, len(st.counts)
			}
		case 10: // flags
			if !r.check(wt, wireVarint) {
				return false
			}
			p.flags = uint32(r.varint())
		case 11: // exemplars
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readExemplar(b) {
				return false
			}
		default:
			return false
		}
	}
	if r.bad {
		return false
	}
	p.kv1, p.ex1 = len(st.kvs), len(st.exs)
	return st.addPoint(p, ri)
}

// readBuckets reads an ExponentialHistogramDataPoint.Buckets onto
// st.counts. As pdata, packed and unpacked counts both append.
func (st *fastState) readBuckets(b []byte) (int32, bool) {
	var off int32
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1: // offset, sint32
			if !r.check(wt, wireVarint) {
				return 0, false
			}
			num := r.varint()
			off = int32(uint32(num>>1) ^ uint32(int32((num&1)<<31)>>31))
		case 2:
			switch wt {
			case wireVarint:
				st.counts = append(st.counts, r.varint())
			case wireLen:
				packed := wireReader{b: r.bytes()}
				for packed.more() {
					st.counts = append(st.counts, packed.varint())
				}
				if packed.bad {
					return 0, false
				}
			default:
				return 0, false
			}
		default:
			return 0, false
		}
	}
	return off, !r.bad
}

func (st *fastState) readSummaryPoint(b []byte, ri int) bool {
	p := fastPoint{kv0: len(st.kvs), ex0: len(st.exs), eb0: len(st.bounds)}
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 7: // attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 2, 3, 4, 5: // start_time_unix_nano, time_unix_nano, count, sum
			if !r.check(wt, wireI64) {
				return false
			}
			v := r.fixed64()
			switch n {
			case 2:
				p.st = v
			case 3:
				p.t = v
			case 4:
				p.count = v
			default:
				p.v = math.Float64frombits(v)
			}
		case 6: // quantile_values
			if !r.check(wt, wireLen) {
				return false
			}
			q := wireReader{b: r.bytes()}
			var quantile, value float64
			for q.more() {
				n, wt := q.tag()
				if (n != 1 && n != 2) || !q.check(wt, wireI64) {
					return false
				}
				if v := math.Float64frombits(q.fixed64()); n == 1 {
					quantile = v
				} else {
					value = v
				}
			}
			if q.bad || r.bad {
				return false
			}
			st.bounds = append(st.bounds, quantile, value)
		case 8: // flags
			if !r.check(wt, wireVarint) {
				return false
			}
			p.flags = uint32(r.varint())
		default:
			return false
		}
	}
	if r.bad {
		return false
	}
	p.kv1, p.ex1, p.eb1 = len(st.kvs), len(st.exs), len(st.bounds)
	return st.addPoint(p, ri)
}

func (st *fastState) readPoint(b []byte, ri int) bool {
	p := fastPoint{kv0: len(st.kvs), ex0: len(st.exs)}
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 7: // attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.kvs) {
				return false
			}
		case 2, 3, 4, 6: // start_time_unix_nano, time_unix_nano, as_double, as_int
			if !r.check(wt, wireI64) {
				return false
			}
			v := r.fixed64()
			switch n {
			case 2:
				p.st = v
			case 3:
				p.t = v
			case 4:
				p.v = math.Float64frombits(v)
			default:
				p.v = float64(int64(v))
			}
		case 5: // exemplars
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readExemplar(b) {
				return false
			}
		case 8: // flags
			if !r.check(wt, wireVarint) {
				return false
			}
			p.flags = uint32(r.varint())
		default:
			return false
		}
	}
	if r.bad {
		return false
	}
	p.kv1, p.ex1 = len(st.kvs), len(st.exs)
	return st.addPoint(p, ri)
}

func (st *fastState) addPoint(p fastPoint, ri int) bool {
	if !uniqueKeys(st.kvs[p.kv0:p.kv1]) || !st.inBudget() {
		return false
	}
	res := &st.res[ri]
	res.points = true
	res.minTs = min(res.minTs, p.t)
	res.maxTs = max(res.maxTs, p.t)
	st.points = append(st.points, p)
	st.npoints++
	return true
}

func (st *fastState) readExemplar(b []byte) bool {
	e := fastExemplar{kv0: len(st.exKVs)}
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 7: // filtered_attributes
			if !r.check(wt, wireLen) {
				return false
			}
			if b := r.bytes(); r.bad || !st.readKV(b, &st.exKVs) {
				return false
			}
		case 2, 3, 6: // time_unix_nano, as_double, as_int
			if !r.check(wt, wireI64) {
				return false
			}
			v := r.fixed64()
			switch n {
			case 2:
				e.t = v
			case 3:
				e.v, e.hasValue = math.Float64frombits(v), true
			default:
				e.v, e.hasValue = float64(int64(v)), true
			}
		case 5, 4: // trace_id, span_id
			if !r.check(wt, wireLen) {
				return false
			}
			id := r.bytes()
			if n == 5 {
				if len(id) != 0 && len(id) != 16 {
					return false
				}
				e.trace = id
			} else {
				if len(id) != 0 && len(id) != 8 {
					return false
				}
				e.span = id
			}
		default:
			return false
		}
	}
	e.kv1 = len(st.exKVs)
	if r.bad || !e.hasValue || !uniqueKeys(st.exKVs[e.kv0:e.kv1]) {
		return false
	}
	st.exs = append(st.exs, e)
	return true
}

// readKV reads a KeyValue onto *kvs.
func (st *fastState) readKV(b []byte, kvs *[]fastKV) bool {
	var kv fastKV
	haveValue := false
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1:
			if !r.check(wt, wireLen) {
				return false
			}
			kv.key = alias(r.bytes())
		case 2:
			if !r.check(wt, wireLen) || haveValue {
				return false
			}
			haveValue = true
			if b := r.bytes(); r.bad || !readValue(b, &kv) {
				return false
			}
		case 3: // key_strindex: profiles only
			if !r.check(wt, wireVarint) {
				return false
			}
			r.varint()
		default:
			return false
		}
	}
	if r.bad || (len(*kvs)%64 == 63 && !st.inBudget()) {
		return false
	}
	*kvs = append(*kvs, kv)
	return true
}

// readValue reads an AnyValue: the scalars; arrays, maps and string
// indexes end the fast path.
func readValue(b []byte, kv *fastKV) bool {
	r := wireReader{b: b}
	for r.more() {
		n, wt := r.tag()
		switch n {
		case 1, 7: // string_value, bytes_value
			if !r.check(wt, wireLen) {
				return false
			}
			kv.str, kv.kind = alias(r.bytes()), kvStr
			if n == 7 {
				kv.kind = kvBytes
			}
		case 2, 3: // bool_value, int_value
			if !r.check(wt, wireVarint) {
				return false
			}
			kv.num, kv.kind = r.varint(), kvBool
			if n == 3 {
				kv.kind = kvInt
			} else if kv.num != 0 {
				kv.num = 1
			}
		case 4: // double_value
			if !r.check(wt, wireI64) {
				return false
			}
			kv.num, kv.kind = r.fixed64(), kvDouble
		default:
			return false
		}
	}
	return !r.bad
}

// uniqueKeys reports whether kvs has no key twice (pdata keeps both; the
// converter would then behave in ways the fast path does not copy).
func uniqueKeys(kvs []fastKV) bool {
	if len(kvs) > fastMaxAttrs {
		return false
	}
	for i := 1; i < len(kvs); i++ {
		for j := range i {
			if kvs[i].key == kvs[j].key {
				return false
			}
		}
	}
	return true
}
