package otlp

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/luminate-io/luminate/apierror"
)

// pdata decodes (and the converter prints) nested attribute values
// (AnyValue arrays and key-value lists) by recursion, without a bound: a
// body of some megabytes nested millions deep, a few hundred kilobytes
// gzipped, overflows the goroutine stack and kills the process. The body
// is checked first.
const (
	// maxValueDepth is the deepest nesting of attribute values accepted;
	// instrumentation nests a few levels at most.
	maxValueDepth = 32
	// maxJSONDepth is the deepest nesting of JSON objects and arrays: a
	// data point's attributes sit about 12 deep, each level of value
	// nesting adds 4.
	maxJSONDepth = 16 + 4*maxValueDepth
)

func tooDeep() error {
	return apierror.New(apierror.InvalidArgument, "attribute values nested more than %d deep", maxValueDepth)
}

// checkNesting refuses a body whose attribute values nest deeper than
// maxValueDepth. A malformed body passes: the decoder says what is wrong
// with it.
func checkNesting(raw []byte, enc encoding) error {
	if enc == encJSON {
		return checkJSONDepth(raw)
	}
	if !walk(raw, msgRequest, 0) {
		return tooDeep()
	}
	return nil
}

// The messages of ExportMetricsServiceRequest on the way to an AnyValue.
type msgType uint8

const (
	msgNone msgType = iota
	msgRequest
	msgResourceMetrics
	msgResource
	msgScopeMetrics
	msgScope
	msgMetric
	msgPoints // Gauge, Sum, Histogram, ExponentialHistogram, Summary: data_points = 1
	msgNumberPoint
	msgHistogramPoint
	msgExpHistogramPoint
	msgSummaryPoint
	msgExemplar
	msgKeyValue
	msgAnyValue
	msgArrayValue
	msgKeyValueList
)

// child is the message type of field num of a t, or msgNone for a field
// that holds no attribute value.
func child(t msgType, num protowire.Number) msgType {
	switch t {
	case msgRequest:
		return pick(num == 1, msgResourceMetrics)
	case msgResourceMetrics:
		return pickOf(num, map2{1, msgResource}, map2{2, msgScopeMetrics})
	case msgResource:
		return pick(num == 1, msgKeyValue)
	case msgScopeMetrics:
		return pickOf(num, map2{1, msgScope}, map2{2, msgMetric})
	case msgScope:
		return pick(num == 3, msgKeyValue)
	case msgMetric:
		switch num {
		case 5, 7, 9, 10, 11:
			return msgPoints // of the kind pointsOf(num)
		case 12:
			return msgKeyValue
		}
	case msgNumberPoint:
		return pickOf(num, map2{7, msgKeyValue}, map2{5, msgExemplar})
	case msgHistogramPoint:
		return pickOf(num, map2{9, msgKeyValue}, map2{8, msgExemplar})
	case msgExpHistogramPoint:
		return pickOf(num, map2{1, msgKeyValue}, map2{11, msgExemplar})
	case msgSummaryPoint:
		return pick(num == 7, msgKeyValue)
	case msgExemplar:
		return pick(num == 7, msgKeyValue)
	case msgKeyValue:
		return pick(num == 2, msgAnyValue)
	case msgAnyValue:
		return pickOf(num, map2{5, msgArrayValue}, map2{6, msgKeyValueList})
	case msgArrayValue:
		return pick(num == 1, msgAnyValue)
	case msgKeyValueList:
		return pick(num == 1, msgKeyValue)
	}
	return msgNone
}

type map2 struct {
	num protowire.Number
	t   msgType
}

func pick(ok bool, t msgType) msgType {
	if ok {
		return t
	}
	return msgNone
}

func pickOf(num protowire.Number, cases ...map2) msgType {
	for _, c := range cases {
		if c.num == num {
			return c.t
		}
	}
	return msgNone
}

// pointsOf is the data point type of the Metric field num (gauge 5, sum
// 7, histogram 9, exponential histogram 10, summary 11).
func pointsOf(num protowire.Number) msgType {
	switch num {
	case 9:
		return msgHistogramPoint
	case 10:
		return msgExpHistogramPoint
	case 11:
		return msgSummaryPoint
	}
	return msgNumberPoint
}

// walk walks message b of type t, depth AnyValues deep, and reports
// false when some value nests deeper than maxValueDepth. It stops,
// reporting true, at anything malformed.
func walk(b []byte, t msgType, depth int) bool {
	if t == msgAnyValue {
		if depth++; depth > maxValueDepth {
			return false
		}
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return true
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		switch c := child(t, num); {
		case c == msgNone:
		case c == msgPoints:
			// Gauge, Sum, ...: their data_points (1) are of the kind
			// of the Metric's field.
			if !walkPoints(v, pointsOf(num), depth) {
				return false
			}
		default:
			if !walk(v, c, depth) {
				return false
			}
		}
	}
	return true
}

func walkPoints(b []byte, point msgType, depth int) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return true
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return true
		}
		b = b[n:]
		if num == 1 && !walk(v, point, depth) {
			return false
		}
	}
	return true
}

// checkJSONDepth refuses JSON nested deeper than maxJSONDepth.
func checkJSONDepth(raw []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return tooDeep()
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
