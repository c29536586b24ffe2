package otlp

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// pdata decodes a request into one Go object per message, some times the
// size of its encoding: an empty data point is 2 bytes of protobuf and
// 142 bytes allocated, an empty exemplar 2 bytes and 403. A body of 64 MiB
// could so take gigabytes. Before the upstream path decodes a body, it
// counts what pdata will allocate for it (decodedCost), refuses it when
// that passes the in-flight budget or its points --ingest.max-samples-
// per-request, and reserves that much of the budget.
//
// The costs are what pdata v1.69 allocates in all (runtime TotalAlloc,
// slice growth included) per element, measured by
// TestDecodedCostCoversPdata on bodies of one kind of element each,
// rounded up by about a tenth.
const (
	costResourceMetrics = 192
	costScopeMetrics    = 176
	costMetric          = 160
	costPoints          = 64 // a Gauge, Sum, ... (its points apart)
	costNumberPoint     = 160
	costHistogramPoint  = 224
	costExpPoint        = 288
	costSummaryPoint    = 160
	costQuantile        = 72
	costExemplar        = 448
	costKeyValue        = 256 // its AnyValue included
	costAnyValue        = 104 // in an array
	costEntityRef       = 144
	costRepeated        = 48 // an element of a repeated scalar field, not packed, or a packed varint
	costPacked64        = 8  // per 8 bytes of a packed fixed64 or double field
	costString          = 96 // an element of a repeated string field
	costSubMessage      = 64 // a Resource, a scope, Buckets, an array or key-value list
)

// The messages of an ExportMetricsServiceRequest, for decodedCost.
const (
	cmNone msgType = iota + 64
	cmRequest
	cmResourceMetrics
	cmResource
	cmEntityRef
	cmScopeMetrics
	cmScope
	cmMetric
	cmGauge
	cmSum
	cmHistogram
	cmExpHistogram
	cmSummary
	cmNumberPoint
	cmHistogramPoint
	cmExpPoint
	cmSummaryPoint
	cmBuckets
	cmQuantile
	cmExemplar
	cmKeyValue
	cmAnyValue
	cmArrayValue
	cmKeyValueList
)

// costOf is what pdata allocates for one message of type t.
func costOf(t msgType) int64 {
	switch t {
	case cmResourceMetrics:
		return costResourceMetrics
	case cmScopeMetrics:
		return costScopeMetrics
	case cmMetric:
		return costMetric
	case cmGauge, cmSum, cmHistogram, cmExpHistogram, cmSummary:
		return costPoints
	case cmNumberPoint:
		return costNumberPoint
	case cmHistogramPoint:
		return costHistogramPoint
	case cmExpPoint:
		return costExpPoint
	case cmSummaryPoint:
		return costSummaryPoint
	case cmQuantile:
		return costQuantile
	case cmExemplar:
		return costExemplar
	case cmKeyValue:
		return costKeyValue
	case cmAnyValue:
		return costAnyValue
	case cmEntityRef:
		return costEntityRef
	}
	return costSubMessage
}

// fieldKind is how decodedCost counts field num of a message of type t:
// a sub-message of the type returned, or (cmNone) a scalar, with
// repeated its repeated kind.
func fieldKind(t msgType, num protowire.Number) (sub msgType, repeated repeatKind) {
	switch t {
	case cmRequest:
		return pickMsg(num == 1, cmResourceMetrics), 0
	case cmResourceMetrics:
		switch num {
		case 1:
			return cmResource, 0
		case 2:
			return cmScopeMetrics, 0
		}
	case cmResource:
		switch num {
		case 1:
			return cmKeyValue, 0
		case 3:
			return cmEntityRef, 0
		}
	case cmEntityRef:
		if num == 3 || num == 4 {
			return cmNone, repeatString
		}
	case cmScopeMetrics:
		switch num {
		case 1:
			return cmScope, 0
		case 2:
			return cmMetric, 0
		}
	case cmScope:
		return pickMsg(num == 3, cmKeyValue), 0
	case cmMetric:
		switch num {
		case 5:
			return cmGauge, 0
		case 7:
			return cmSum, 0
		case 9:
			return cmHistogram, 0
		case 10:
			return cmExpHistogram, 0
		case 11:
			return cmSummary, 0
		case 12:
			return cmKeyValue, 0
		}
	case cmGauge, cmSum:
		return pickMsg(num == 1, cmNumberPoint), 0
	case cmHistogram:
		return pickMsg(num == 1, cmHistogramPoint), 0
	case cmExpHistogram:
		return pickMsg(num == 1, cmExpPoint), 0
	case cmSummary:
		return pickMsg(num == 1, cmSummaryPoint), 0
	case cmNumberPoint:
		switch num {
		case 7:
			return cmKeyValue, 0
		case 5:
			return cmExemplar, 0
		}
	case cmHistogramPoint:
		switch num {
		case 9:
			return cmKeyValue, 0
		case 8:
			return cmExemplar, 0
		case 6, 7:
			return cmNone, repeatFixed64
		}
	case cmExpPoint:
		switch num {
		case 1:
			return cmKeyValue, 0
		case 11:
			return cmExemplar, 0
		case 8, 9:
			return cmBuckets, 0
		}
	case cmBuckets:
		if num == 2 {
			return cmNone, repeatVarint
		}
	case cmSummaryPoint:
		switch num {
		case 7:
			return cmKeyValue, 0
		case 6:
			return cmQuantile, 0
		}
	case cmExemplar:
		return pickMsg(num == 7, cmKeyValue), 0
	case cmKeyValue:
		// Its AnyValue (2) is counted in costKeyValue.
		if num == 2 {
			return cmAnyValue, 0
		}
	case cmAnyValue:
		switch num {
		case 5:
			return cmArrayValue, 0
		case 6:
			return cmKeyValueList, 0
		}
	case cmArrayValue:
		return pickMsg(num == 1, cmAnyValue), 0
	case cmKeyValueList:
		return pickMsg(num == 1, cmKeyValue), 0
	}
	return cmNone, 0
}

type repeatKind uint8

const (
	repeatNone repeatKind = iota
	repeatFixed64
	repeatVarint
	repeatString
)

func pickMsg(ok bool, t msgType) msgType {
	if ok {
		return t
	}
	return cmNone
}

// decodedCost returns the data points of protobuf request raw and the
// bytes pdata allocates to decode it (its bytes themselves counted once,
// for the strings it copies). A malformed body is counted as far as it
// reads: pdata then refuses it. Nesting deeper than maxValueDepth is
// checkNesting's to refuse: decodedCost stops counting there.
func decodedCost(raw []byte) (points int64, cost int64) {
	c := costCounter{}
	c.walk(raw, cmRequest, 0)
	return c.points, c.cost + int64(len(raw)) + costRequest
}

// costRequest is what decoding any request allocates.
const costRequest = 4 << 10

// costCounter counts what pdata allocates for a request, and its
// elements of the kinds the fast path keeps in slices (it sizes them
// with these counts before reading).
type costCounter struct {
	points, cost         int64
	kvs, exemplars, exKV int
}

// maxCostDepth bounds decodedCost's recursion: a body nesting deeper is
// checkNesting's to refuse.
const maxCostDepth = 16 + 4*maxValueDepth

func (c *costCounter) walk(b []byte, t msgType, depth int) {
	if depth > maxCostDepth {
		return
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		sub, rep := fieldKind(t, num)
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return
			}
			b = b[n:]
			if rep != repeatNone {
				c.cost += costRepeated
			}
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return
		}
		b = b[n:]
		switch {
		case sub != cmNone:
			c.cost += costOf(sub)
			switch sub {
			case cmNumberPoint, cmHistogramPoint, cmExpPoint, cmSummaryPoint:
				c.points++
			case cmExemplar:
				c.exemplars++
			case cmKeyValue:
				if t == cmExemplar {
					c.exKV++
				} else {
					c.kvs++
				}
			}
			c.walk(v, sub, depth+1)
		case rep == repeatFixed64:
			c.cost += costPacked64 * int64((len(v)+7)/8)
		case rep == repeatVarint:
			// Each varint ends in a byte below 0x80.
			var ends int64
			for _, x := range v {
				if x < 0x80 {
					ends++
				}
			}
			c.cost += costRepeated * ends
		case rep == repeatString:
			c.cost += costString
		}
	}
}

// decodedCostJSON returns the data points of JSON request raw and a bound
// on what pdata allocates to decode it: each object and array element
// costs as the message of its key (the OTLP JSON field names; an unknown
// key as the dearest message), and each byte twice (strings are read, then
// copied or base64-decoded).
func decodedCostJSON(raw []byte) (points int64, cost int64) {
	// The key of each open object or array, and whether it is an array.
	type level struct {
		key   []byte
		array bool
		cost  int64 // of each element, for an array
	}
	var (
		stack            []level
		inString, escape bool
		strStart         int
		lastString       []byte
		key              []byte // the key whose value comes next
	)
	elementCost := func(k []byte) (cost int64, point bool) {
		switch string(k) {
		case "resourceMetrics":
			return costResourceMetrics, false
		case "scopeMetrics":
			return costScopeMetrics, false
		case "metrics":
			return costMetric, false
		case "dataPoints":
			return costExpPoint, true
		case "attributes", "filteredAttributes", "metadata":
			return costKeyValue, false
		case "exemplars":
			return costExemplar, false
		case "quantileValues":
			return costQuantile, false
		case "bucketCounts", "explicitBounds":
			return costRepeated, false
		case "idKeys", "descriptionKeys":
			return costString, false
		case "entityRefs":
			return costEntityRef, false
		case "values":
			return costKeyValue, false // of an array or key-value list
		}
		return costExemplar, false
	}
	// pending: an element of the array on top may start (after its '['
	// or a ','); a scalar costs the array's element cost, an object or
	// array is counted at its start.
	pending := false
	for i, x := range raw {
		if inString {
			switch {
			case escape:
				escape = false
			case x == '\\':
				escape = true
			case x == '"':
				inString = false
				lastString = raw[strStart:i]
			}
			continue
		}
		switch x {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if pending {
			pending = false
			if x != '{' && x != '[' && x != ']' {
				cost += abs(stack[len(stack)-1].cost)
			}
		}
		switch x {
		case '"':
			inString, strStart = true, i+1
		case ':':
			key = lastString
		case '{', '[':
			lv := level{key: key, array: x == '['}
			inArray := len(stack) > 0 && stack[len(stack)-1].array
			if inArray {
				lv.key = stack[len(stack)-1].key
			}
			if lv.array {
				c, point := elementCost(lv.key)
				lv.cost = c
				if point {
					lv.cost = -c // its elements are data points
				}
			} else {
				cost += costSubMessage
			}
			if inArray {
				// An element of an array: counted at its start.
				c := stack[len(stack)-1].cost
				if c < 0 {
					points++
				}
				cost += abs(c)
			}
			stack = append(stack, lv)
			key = nil
			pending = lv.array
		case '}', ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case ',':
			pending = len(stack) > 0 && stack[len(stack)-1].array
		}
		if cost > math.MaxInt64/4 {
			break
		}
	}
	return points, cost + 2*int64(len(raw)) + costRequest
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}
