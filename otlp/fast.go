package otlp

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
)

// The fast converter reads a protobuf ExportMetricsServiceRequest without
// pdata and appends what prometheusremotewrite.PrometheusConverter.FromMetrics
// would append for it, call for call (fast_test.go proves it against the
// converter). It converts every point kind with cumulative temporality:
// gauges and sums (int and double), classic histograms (as _bucket, _sum and
// _count series, or as native histograms with custom buckets), exponential
// histograms (as native histograms, scaled down above schema 8) and
// summaries; with exemplars, stale markers, start times, metadata,
// target_info, job and instance, promoted resource attributes, scope labels,
// type and unit labels, under every naming strategy.
//
// It works in two passes. The first reads and checks the whole request
// into reused slices, and gives up (ok=false, nothing appended) on anything
// it does not handle or that the converter would report as an error or a
// warning: delta temporality, attribute values that are arrays or maps,
// duplicate attribute keys, attributes whose label names collide, names
// the namers refuse, empty metrics, a +Inf explicit bound, zero-count
// histograms with a sum, too many target_info samples, unknown fields,
// malformed protobuf. The second appends.
//
// Steady state, it allocates nothing per data point (native histograms and
// exemplars aside, which it allocates as the converter does): the states
// are kept, names are cached, label values alias the body, and each
// series' labels are written over one buffer, as remotewrite's decoder
// does. So an appender must copy the labels it keeps (Badger's and
// ClickHouse's do: they copy a new series' labels).

// Limits past which the fast path leaves a request to the upstream path.
const (
	fastMaxAttrs      = 128   // attributes of one map (duplicate checks are quadratic)
	fastMaxTargetInfo = 1024  // target_info samples of one resource
	fastMaxCache      = 16384 // entries of one name cache before it is cleared
	fastBytesPerByte  = 8     // the decoded request's memory, per byte of body (the handler reserves as much)
	fastKeepKVs       = 1 << 18
	fastKeepPoints    = 1 << 17
	fastCountBytes    = 4 << 20 // bodies larger are counted before they are read
)

// fastConv keeps a few states (one per processor) from request to
// request, so that steady state nothing is allocated; more go to a
// sync.Pool, which the garbage collector empties.
type fastConv struct {
	free chan *fastState
	pool sync.Pool
	// maxPoints, if positive, is --ingest.max-samples-per-request: a
	// request of more data points is left to the upstream path, which
	// refuses it before decoding it, without reading it.
	maxPoints int
}

func newFastConverter() fastConverter {
	return &fastConv{free: make(chan *fastState, runtime.GOMAXPROCS(0))}
}

func (f *fastConv) get() *fastState {
	select {
	case st := <-f.free:
		return st
	default:
	}
	if st, ok := f.pool.Get().(*fastState); ok {
		return st
	}
	return &fastState{}
}

// put keeps st unless one very large request left it large.
func (f *fastConv) put(st *fastState) {
	st.release()
	if cap(st.kvs) > fastKeepKVs || cap(st.points) > fastKeepPoints {
		return
	}
	select {
	case f.free <- st:
	default:
		f.pool.Put(st)
	}
}

func (f *fastConv) convert(ctx context.Context, body []byte, s prometheusremotewrite.Settings, app promstorage.AppenderV2) (ConvertStats, bool, error) {
	return f.convertAdmit(ctx, body, s, app, nil)
}

// convertAdmit is convert, calling admit (if not nil) with the number of
// data points once it has read the request and before it appends
// anything: an error of admit is returned (ok=true), nothing appended.
// That lets the caller bound and rate-limit the points before converting,
// as it does on the upstream path.
func (f *fastConv) convertAdmit(ctx context.Context, body []byte, s prometheusremotewrite.Settings, app promstorage.AppenderV2, admit func(points int) error) (ConvertStats, bool, error) {
	if ctx.Err() != nil {
		return ConvertStats{}, false, nil
	}
	// The request's elements are counted first: a request of too many
	// points is not read, and the slices the first pass fills are grown
	// once, to their size, so that a large request allocates them once
	// (appended to, they would take some times their size in garbage).
	// Small bodies (the usual batches) are not counted: their slices,
	// kept from request to request, have the size already, and st.read
	// holds them to its budget.
	var c costCounter
	if len(body) > fastCountBytes {
		c.walk(body, cmRequest, 0)
		if f.maxPoints > 0 && c.points > int64(f.maxPoints) {
			return ConvertStats{}, false, nil
		}
	}
	st := f.get()
	defer f.put(st)
	if (len(body) > fastCountBytes && !st.presize(body, &c)) || !st.read(body, &s) {
		return ConvertStats{}, false, nil
	}
	if admit != nil {
		if err := admit(st.npoints); err != nil {
			return ConvertStats{Points: st.npoints}, true, err
		}
	}
	stats, err := st.append(ctx, &s, app)
	return stats, true, err
}

const (
	kvEmpty = iota
	kvStr
	kvBool
	kvInt
	kvDouble
	kvBytes
)

// fastKV is one attribute; key and str alias the body.
type fastKV struct {
	key  string
	name string // the label name key translates to, where it was needed
	str  string
	num  uint64
	kind uint8
}

type fastRes struct {
	kv0, kv1     int // attributes in kvs
	sc0, sc1     int // scopes
	pr0, pr1     int // promoted labels in ctxLabels
	minTs, maxTs uint64
	points       bool
	job, inst    string
	haveRes      bool
}

type fastScope struct {
	name, version, schemaURL string
	kv0, kv1                 int // attributes in kvs
	sl0, sl1                 int // otel_scope_* labels in ctxLabels
	m0, m1                   int // metrics
	haveScope                bool
	promote                  bool
}

const (
	fastGauge = iota + 1
	fastSum
	fastHistogram
	fastExponential
	fastSummary
)

// fastNames are a metric's family name and, for histograms, its series'.
type fastNames struct{ family, sum, count, bucket string }

type fastMetric struct {
	name, unit, desc string
	kind             uint8
	monotonic        bool
	nhcb             bool // a histogram converted to a native histogram with custom buckets
	temporality      int32
	p0, p1           int // points
	names            fastNames
	meta             metadata.Metadata
	typeLabel        string
	unitLabel        string
}

type fastPoint struct {
	kv0, kv1 int // attributes in kvs
	ex0, ex1 int // exemplars
	st, t    uint64
	v        float64 // a number's value; a histogram's sum
	flags    uint32
	// Histograms
	hasSum   bool
	count    uint64
	bc0, bc1 int // bucket counts in counts
	eb0, eb1 int // explicit bounds in bounds; summaries: quantile, value pairs
	// Exponential histograms: bucket counts in counts too
	scale          int32
	posOff, negOff int32
	zeroCount      uint64
	pb0, pb1       int
	nb0, nb1       int
}

type fastExemplar struct {
	kv0, kv1 int // attributes in exKVs
	t        uint64
	v        float64
	hasValue bool
	trace    []byte // 0 or 16 bytes, aliasing the body
	span     []byte // 0 or 8 bytes
}

type fastCacheKey struct {
	namespace                         string
	suffixes, utf8, underscore, multi bool
}

// fastState is the reused memory of one conversion.
type fastState struct {
	body      []byte
	kvs       []fastKV
	exKVs     []fastKV
	res       []fastRes
	scopes    []fastScope
	metrics   []fastMetric
	points    []fastPoint
	exs       []fastExemplar
	counts    []uint64
	bounds    []float64
	ctxLabels []labels.Label // promoted and scope labels, per resource and scope
	npoints   int
	budget    int // the bytes the request's entries may take

	arena   []byte // values formatted for the request (resource, scope)
	ptArena []byte // values formatted for one series
	keyBuf  []byte
	lb      []labels.Label
	// The sort order of the last series' labels, and their names.
	order      []int
	orderNames []string
	sb         labels.ScratchBuilder
	out        labels.Labels
	seen       map[fastTargetKey]struct{}

	// Caches, valid for key.
	key         fastCacheKey
	labelNames  map[string]string
	metricNames map[string]fastNames
	units       map[string]string
	unitLabels  map[string]string
	helps       map[string]string
	targetName  string

	// The promoted resource attributes of promSrc.
	promSrc   *prometheusremotewrite.PromoteResourceAttributes
	promAll   bool
	promAttrs map[string]struct{}

	labelNamer  otlptranslator.LabelNamer
	metricNamer otlptranslator.MetricNamer

	// The series cache, while appending (fast_cache.go).
	cache    *seriesCache
	sink     handleSink
	owner    uint64
	pk       pointKeys
	ctxKey   cacheKey
	families map[string]struct{} // whose metadata this request has appended by labels
	hbuf     []unsafe.Pointer
	one      [1]unsafe.Pointer
	vals     []float64
}

type fastTargetKey struct {
	hash uint64
	ts   int64
}

// release drops the state's references to the request.
func (st *fastState) release() {
	st.body = nil
	clear(st.kvs)
	clear(st.exKVs)
	clear(st.res)
	clear(st.scopes)
	clear(st.metrics)
	clear(st.exs)
	clear(st.ctxLabels)
	clear(st.lb)
	st.kvs, st.exKVs, st.res, st.scopes = st.kvs[:0], st.exKVs[:0], st.res[:0], st.scopes[:0]
	st.metrics, st.points, st.exs, st.ctxLabels = st.metrics[:0], st.points[:0], st.exs[:0], st.ctxLabels[:0]
	st.counts, st.bounds = st.counts[:0], st.bounds[:0]
	st.lb = st.lb[:0]
	clear(st.orderNames)
	st.order, st.orderNames = st.order[:0], st.orderNames[:0]
	st.sb.Reset()
	st.cache, st.sink, st.one[0] = nil, nil, nil
	clear(st.hbuf)
	st.hbuf = st.hbuf[:0]
}

// presize grows the slices read fills to the elements c counted in
// body, if they fit the budget read holds them to.
func (st *fastState) presize(body []byte, c *costCounter) bool {
	if c.points*int64(unsafe.Sizeof(fastPoint{}))+int64(c.kvs+c.exKV)*int64(unsafe.Sizeof(fastKV{}))+
		int64(c.exemplars)*int64(unsafe.Sizeof(fastExemplar{})) > int64(fastBytesPerByte*len(body)+64<<10) {
		return false
	}
	st.points = slices.Grow(st.points[:0], int(c.points))
	st.kvs = slices.Grow(st.kvs[:0], c.kvs)
	st.exKVs = slices.Grow(st.exKVs[:0], c.exKV)
	st.exs = slices.Grow(st.exs[:0], c.exemplars)
	return true
}

// read is the first pass: it reads and checks body. False: leave the
// request to the upstream path.
func (st *fastState) read(body []byte, s *prometheusremotewrite.Settings) bool {
	st.body = body
	st.budget = fastBytesPerByte*len(body) + 64<<10
	st.npoints = 0
	st.arena = st.arena[:0]
	if !st.setup(s) {
		return false
	}
	r := wireReader{b: body}
	for r.more() {
		n, wt := r.tag()
		if n != 1 || !r.check(wt, wireLen) {
			return false
		}
		if b := r.bytes(); r.bad || !st.readResourceMetrics(b) {
			return false
		}
	}
	if r.bad {
		return false
	}
	return st.resolve(s)
}

// setup validates the settings and resets the caches they invalidate.
func (st *fastState) setup(s *prometheusremotewrite.Settings) bool {
	key := fastCacheKey{
		namespace: s.Namespace, suffixes: s.AddMetricSuffixes, utf8: s.AllowUTF8,
		underscore: s.LabelNameUnderscoreSanitization, multi: s.LabelNamePreserveMultipleUnderscores,
	}
	if key != st.key || st.labelNames == nil {
		key.namespace = strings.Clone(key.namespace)
		st.key = key
		st.labelNames = make(map[string]string)
		st.metricNames = make(map[string]fastNames)
		st.units = make(map[string]string)
		st.unitLabels = make(map[string]string)
		st.helps = make(map[string]string)
		st.targetName = "target_info"
		if s.Namespace != "" {
			st.targetName = s.Namespace + "_target_info"
		}
		st.labelNamer = otlptranslator.LabelNamer{
			UTF8Allowed:                 s.AllowUTF8,
			UnderscoreLabelSanitization: s.LabelNameUnderscoreSanitization, //nolint:staticcheck // as the upstream converter sets it
			PreserveMultipleUnderscores: s.LabelNamePreserveMultipleUnderscores,
		}
		st.metricNamer = otlptranslator.MetricNamer{
			Namespace:          key.namespace,
			WithMetricSuffixes: s.AddMetricSuffixes,
			UTF8Allowed:        s.AllowUTF8,
		}
	}
	if st.seen == nil {
		st.seen = make(map[fastTargetKey]struct{})
	}
	if s.PromoteResourceAttributes != st.promSrc {
		if !st.readPromote(s.PromoteResourceAttributes) {
			return false
		}
	}
	if !s.DisableTargetInfo && lookbackDelta(s)/2 <= 0 {
		return false
	}
	return true
}

// readPromote reads the (unexported) fields of the promoted resource
// attributes. If their shape is not the one known, the fast path gives up.
func (st *fastState) readPromote(p *prometheusremotewrite.PromoteResourceAttributes) bool {
	st.promSrc, st.promAll, st.promAttrs = p, false, nil
	if p == nil {
		return true
	}
	v := reflect.ValueOf(p).Elem()
	all, attrs := v.FieldByName("promoteAll"), v.FieldByName("attrs")
	if !all.IsValid() || all.Kind() != reflect.Bool || !attrs.IsValid() || attrs.Kind() != reflect.Map || attrs.Type().Key().Kind() != reflect.String || v.NumField() != 2 {
		st.promSrc = nil
		return false
	}
	st.promAll = all.Bool()
	st.promAttrs = make(map[string]struct{}, attrs.Len())
	it := attrs.MapRange()
	for it.Next() {
		st.promAttrs[it.Key().String()] = struct{}{}
	}
	return true
}

// inBudget reports whether the entries read so far take no more than
// st.budget: a body of tiny (say empty) points must not make the fast
// path hold many times its size. Over budget, the upstream path decides.
func (st *fastState) inBudget() bool {
	used := len(st.points)*int(unsafe.Sizeof(fastPoint{})) +
		(len(st.kvs)+len(st.exKVs))*int(unsafe.Sizeof(fastKV{})) +
		len(st.exs)*int(unsafe.Sizeof(fastExemplar{})) +
		len(st.metrics)*int(unsafe.Sizeof(fastMetric{})) +
		len(st.scopes)*int(unsafe.Sizeof(fastScope{})) +
		len(st.res)*int(unsafe.Sizeof(fastRes{})) +
		8*(len(st.counts)+len(st.bounds))
	return used <= st.budget
}
