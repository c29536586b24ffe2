package otlp

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
)

const (
	serviceName       = "service.name"
	serviceNamespace  = "service.namespace"
	serviceInstanceID = "service.instance.id"
)

func identifying(key string) bool {
	return key == serviceName || key == serviceNamespace || key == serviceInstanceID
}

// resolve ends the first pass: it derives the names and the resource and
// scope labels, and checks everything the converter could report as an
// error or a warning.
func (st *fastState) resolve(s *prometheusremotewrite.Settings) bool {
	if !s.DisableTargetInfo {
		// The handler spaces the target_info samples of a request whose
		// points span long wider than its lookback delta would
		// (targetInfoLookback): leave such requests to it.
		var span time.Duration
		for _, res := range st.res {
			if res.maxTs > res.minTs {
				span = max(span, time.Duration(min(res.maxTs-res.minTs, math.MaxInt64)))
			}
		}
		if d := lookbackDelta(s); targetInfoLookback(d, span) != d {
			return false
		}
	}
	for ri := range st.res {
		res := &st.res[ri]
		kvs := st.kvs[res.kv0:res.kv1]
		var name, ns *fastKV
		for i := range kvs {
			switch kvs[i].key {
			case serviceName:
				name = &kvs[i]
			case serviceNamespace:
				ns = &kvs[i]
			case serviceInstanceID:
				res.inst = st.valueString(&kvs[i], &st.arena)
			}
		}
		if name != nil {
			res.job = st.valueString(name, &st.arena)
			if ns != nil {
				nsv := st.valueString(ns, &st.arena)
				start := len(st.arena)
				st.arena = append(st.arena, nsv...)
				st.arena = append(st.arena, '/')
				st.arena = append(st.arena, res.job...)
				res.job = alias(st.arena[start:])
			}
		}
		res.pr0 = len(st.ctxLabels)
		if s.PromoteResourceAttributes != nil {
			st.lb = st.lb[:0]
			for i := range kvs {
				_, listed := st.promAttrs[kvs[i].key]
				if listed == st.promAll {
					continue
				}
				n, ok := st.labelName(kvs[i].key)
				if !ok {
					return false
				}
				st.lb = setLabel(st.lb, n, st.valueString(&kvs[i], &st.arena))
			}
			st.ctxLabels = append(st.ctxLabels, st.lb...)
		}
		res.pr1 = len(st.ctxLabels)
		if !s.DisableTargetInfo && res.points && !st.checkTargetInfo(res, s) {
			return false
		}
		for si := res.sc0; si < res.sc1; si++ {
			sc := &st.scopes[si]
			sc.promote = s.PromoteScopeMetadata && sc.name != ""
			sc.sl0 = len(st.ctxLabels)
			if sc.promote {
				st.lb = st.lb[:0]
				for _, kv := range st.kvs[sc.kv0:sc.kv1] {
					st.keyBuf = append(append(st.keyBuf[:0], "otel_scope_"...), kv.key...)
					n, ok := st.labelName(alias(st.keyBuf))
					if !ok {
						return false
					}
					st.lb = setLabel(st.lb, n, st.valueString(&kv, &st.arena))
				}
				st.ctxLabels = append(st.ctxLabels, st.lb...)
			}
			sc.sl1 = len(st.ctxLabels)
			for mi := sc.m0; mi < sc.m1; mi++ {
				if !st.resolveMetric(&st.metrics[mi], s) {
					return false
				}
			}
		}
	}
	return true
}

// checkTargetInfo checks that the target_info of res converts without
// error and has a bounded number of samples.
func (st *fastState) checkTargetInfo(res *fastRes, s *prometheusremotewrite.Settings) bool {
	kvs := st.kvs[res.kv0:res.kv1]
	nonIdentifying := 0
	for i := range kvs {
		if !identifying(kvs[i].key) {
			nonIdentifying++
		}
	}
	if nonIdentifying == 0 {
		return true // no target_info
	}
	if !s.AllowUTF8 {
		for i := range kvs {
			if !s.KeepIdentifyingResourceAttributes && identifying(kvs[i].key) {
				continue
			}
			n, ok := st.labelName(kvs[i].key)
			if !ok {
				return false
			}
			kvs[i].name = n
			for j := range i {
				if kvs[j].name == n && (s.KeepIdentifyingResourceAttributes || !identifying(kvs[j].key)) {
					return false // a collision: the converter warns
				}
			}
		}
	}
	first, last, interval := targetInfoSpan(res, s)
	return last.Sub(first)/interval < fastMaxTargetInfo
}

func targetInfoSpan(res *fastRes, s *prometheusremotewrite.Settings) (first, last time.Time, interval time.Duration) {
	return time.Unix(0, int64(res.minTs)).UTC(), time.Unix(0, int64(res.maxTs)).UTC(), lookbackDelta(s) / 2
}

// lookbackDelta is the lookback delta the converter spaces target_info
// samples by.
func lookbackDelta(s *prometheusremotewrite.Settings) time.Duration {
	if s.LookbackDelta == 0 {
		return 5 * time.Minute
	}
	return s.LookbackDelta
}

func (st *fastState) resolveMetric(m *fastMetric, s *prometheusremotewrite.Settings) bool {
	var t otlptranslator.MetricType = otlptranslator.MetricTypeGauge
	m.meta.Type = model.MetricTypeGauge
	switch m.kind {
	case fastSum:
		t = otlptranslator.MetricTypeNonMonotonicCounter
		if m.monotonic {
			t = otlptranslator.MetricTypeMonotonicCounter
			m.meta.Type = model.MetricTypeCounter
		}
	case fastExponential:
		t = otlptranslator.MetricTypeExponentialHistogram
		m.meta.Type = model.MetricTypeHistogram
		for _, p := range st.points[m.p0:m.p1] {
			if p.scale < histogram.ExponentialSchemaMin {
				return false // the converter refuses the point
			}
			if p.flags&1 == 0 && p.count == 0 && p.hasSum && p.v != 0 {
				return false // the converter warns
			}
		}
	case fastSummary:
		t = otlptranslator.MetricTypeSummary
		m.meta.Type = model.MetricTypeSummary
	case fastHistogram:
		t = otlptranslator.MetricTypeHistogram
		m.meta.Type = model.MetricTypeHistogram
		m.nhcb = s.ConvertHistogramsToNHCB
		for _, p := range st.points[m.p0:m.p1] {
			if m.nhcb && p.flags&1 == 0 && p.count == 0 && p.hasSum && p.v != 0 {
				return false // the converter warns
			}
		}
	}
	st.keyBuf = append(st.keyBuf[:0], byte(t))
	st.keyBuf = strconv.AppendInt(st.keyBuf, int64(len(m.name)), 10)
	st.keyBuf = append(append(append(st.keyBuf, ':'), m.name...), m.unit...)
	names, ok := st.metricNames[alias(st.keyBuf)]
	if !ok {
		name, err := st.metricNamer.Build(otlptranslator.Metric{Name: strings.Clone(m.name), Unit: strings.Clone(m.unit), Type: t})
		if err != nil {
			return false
		}
		names.family = name
		if m.kind == fastHistogram || m.kind == fastSummary {
			names.sum, names.count, names.bucket = name+"_sum", name+"_count", name+"_bucket"
		}
		if len(st.metricNames) >= fastMaxCache {
			clear(st.metricNames)
		}
		st.metricNames[string(st.keyBuf)] = names
	}
	m.names = names
	unit, ok := st.units[m.unit]
	if !ok {
		u := otlptranslator.UnitNamer{}
		unit = u.Build(strings.Clone(m.unit))
		cachePut(st.units, strings.Clone(m.unit), unit)
	}
	m.meta.Unit = unit
	help, ok := st.helps[m.desc]
	if !ok {
		help = strings.Clone(m.desc)
		cachePut(st.helps, help, help)
	}
	m.meta.Help = help
	if s.EnableTypeAndUnitLabels {
		m.typeLabel = string(m.meta.Type) // already lower case
		if unit != "" {
			ul, ok := st.unitLabels[unit]
			if !ok {
				u := otlptranslator.UnitNamer{UTF8Allowed: s.AllowUTF8}
				ul = u.Build(unit)
				cachePut(st.unitLabels, unit, ul)
			}
			m.unitLabel = ul
		}
	}
	for pi := m.p0; pi < m.p1; pi++ {
		p := &st.points[pi]
		for _, b := range st.bounds[p.eb0:p.eb1] {
			if m.kind == fastHistogram && !m.nhcb && math.IsInf(b, 1) {
				return false // the converter warns about an explicit +Inf bound
			}
		}
		kvs := st.kvs[p.kv0:p.kv1]
		if pi > m.p0 && sameKeys(kvs, st.kvs[st.points[pi-1].kv0:st.points[pi-1].kv1]) {
			continue // the previous point's names, checked
		}
		for i := range kvs {
			if kvs[i].key == model.MetricNameLabel {
				continue
			}
			if s.AllowUTF8 {
				kvs[i].name = kvs[i].key
				continue
			}
			n, ok := st.labelName(kvs[i].key)
			if !ok {
				return false
			}
			kvs[i].name = n
			for j := range i {
				if kvs[j].name == n && kvs[j].key != model.MetricNameLabel {
					return false // a collision: the converter warns
				}
			}
		}
	}
	return true
}

// sameKeys reports whether kvs has prev's keys, in the same order; if so
// it copies their label names.
func sameKeys(kvs, prev []fastKV) bool {
	if len(kvs) != len(prev) {
		return false
	}
	for i := range kvs {
		if kvs[i].key != prev[i].key {
			return false
		}
	}
	for i := range kvs {
		kvs[i].name = prev[i].name
	}
	return true
}

// labelName is the converter's label name for key, cached.
func (st *fastState) labelName(key string) (string, bool) {
	if n, ok := st.labelNames[key]; ok {
		return n, true
	}
	k := strings.Clone(key)
	n, err := st.labelNamer.Build(k)
	if err != nil {
		return "", false
	}
	cachePut(st.labelNames, k, n)
	return n, true
}

func cachePut[V any](m map[string]V, k string, v V) {
	if len(m) >= fastMaxCache {
		clear(m)
	}
	m[k] = v
}

// valueString is pcommon.Value.AsString of kv's value; formatted values go
// on *arena.
func (st *fastState) valueString(kv *fastKV, arena *[]byte) string {
	start := len(*arena)
	switch kv.kind {
	case kvStr:
		return kv.str
	case kvBool:
		if kv.num != 0 {
			return "true"
		}
		return "false"
	case kvInt:
		*arena = strconv.AppendInt(*arena, int64(kv.num), 10)
	case kvDouble:
		*arena = appendFloat64AsString(*arena, math.Float64frombits(kv.num))
	case kvBytes:
		*arena = base64.StdEncoding.AppendEncode(*arena, []byte(kv.str))
	default:
		return ""
	}
	return alias((*arena)[start:])
}

// appendFloat64AsString is pdata's float64AsString.
func appendFloat64AsString(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	start := len(b)
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

// setLabel is labels.Builder.Set on lb: an empty value deletes.
func setLabel(lb []labels.Label, name, v string) []labels.Label {
	for i := range lb {
		if lb[i].Name == name {
			if v == "" {
				return slices.Delete(lb, i, i+1)
			}
			lb[i].Value = v
			return lb
		}
	}
	if v == "" {
		return lb
	}
	return append(lb, labels.Label{Name: name, Value: v})
}

// getLabel is labels.Builder.Get on lb.
func getLabel(lb []labels.Label, name string) string {
	for i := range lb {
		if lb[i].Name == name {
			return lb[i].Value
		}
	}
	return ""
}

// seriesLabels builds the labels the converter's createAttributes builds
// for kvs (a data point's attributes, or for target_info the resource's),
// with __name__ = name, into st.out.
func (st *fastState) seriesLabels(res *fastRes, sc *fastScope, m *fastMetric, kvs []fastKV, target bool, name string, s *prometheusremotewrite.Settings) labels.Labels {
	st.ptArena = st.ptArena[:0]
	st.lb = st.createAttributes(res, sc, m, kvs, target, s)
	st.lb = setLabel(st.lb, model.MetricNameLabel, name)
	return st.overwrite(st.lb)
}

// createAttributes is the converter's createAttributes, without the
// extra labels: the labels of a series but for its __name__ (and le).
func (st *fastState) createAttributes(res *fastRes, sc *fastScope, m *fastMetric, kvs []fastKV, target bool, s *prometheusremotewrite.Settings) []labels.Label {
	lb := st.lb[:0]
	for i := range kvs {
		kv := &kvs[i]
		if target {
			if !s.KeepIdentifyingResourceAttributes && identifying(kv.key) {
				continue
			}
		} else if kv.key == model.MetricNameLabel {
			continue
		}
		n := kv.name
		if s.AllowUTF8 {
			n = kv.key
		}
		if v := st.valueString(kv, &st.ptArena); v != "" {
			lb = append(lb, labels.Label{Name: n, Value: v})
		}
	}
	if !target && s.PromoteResourceAttributes != nil {
		for _, l := range st.ctxLabels[res.pr0:res.pr1] {
			if getLabel(lb, l.Name) == "" {
				lb = append(lb, l)
			}
		}
	}
	if res.job != "" {
		lb = setLabel(lb, model.JobLabel, res.job)
	}
	if res.inst != "" {
		lb = setLabel(lb, model.InstanceLabel, res.inst)
	}
	for k, v := range s.ExternalLabels {
		if getLabel(lb, k) == "" {
			lb = setLabel(lb, k, v)
		}
	}
	if !target && sc.promote {
		for _, l := range st.ctxLabels[sc.sl0:sc.sl1] {
			lb = setLabel(lb, l.Name, l.Value)
		}
		lb = setLabel(lb, "otel_scope_name", sc.name)
		lb = setLabel(lb, "otel_scope_version", sc.version)
		lb = setLabel(lb, "otel_scope_schema_url", sc.schemaURL)
	}
	if s.EnableTypeAndUnitLabels {
		if target {
			lb = setLabel(lb, model.MetricTypeLabel, "") // the converter's empty metadata
		} else {
			lb = setLabel(lb, model.MetricTypeLabel, m.typeLabel)
			if m.meta.Unit != "" {
				lb = setLabel(lb, model.MetricUnitLabel, m.unitLabel)
			}
		}
	}
	return lb
}

// overwrite returns lb as labels, sorted, written over st.out.
func (st *fastState) overwrite(lb []labels.Label) labels.Labels {
	// Series after series come with the same names in the same order:
	// sort once, then reuse the order while the names stay the same.
	same := len(lb) == len(st.order)
	for i := 0; same && i < len(lb); i++ {
		same = lb[i].Name == st.orderNames[i]
	}
	if !same {
		st.order = st.order[:0]
		st.orderNames = st.orderNames[:0]
		for i := range lb {
			st.order = append(st.order, i)
			st.orderNames = append(st.orderNames, lb[i].Name)
		}
		slices.SortFunc(st.order, func(a, b int) int { return strings.Compare(lb[a].Name, lb[b].Name) })
	}
	st.sb.Reset()
	for _, i := range st.order {
		l := lb[i]
		if fastBuilderCopies {
			st.sb.Add(l.Name, l.Value)
		} else {
			st.sb.Add(strings.Clone(l.Name), strings.Clone(l.Value))
		}
	}
	if fastBuilderCopies {
		st.sb.Overwrite(&st.out)
		return st.out
	}
	return st.sb.Labels()
}

// append is the second pass.
func (st *fastState) append(ctx context.Context, s *prometheusremotewrite.Settings, app promstorage.AppenderV2) (ConvertStats, error) {
	stats := ConvertStats{Points: st.npoints}
	var errs []error
	fail := func(err error, n int) {
		if len(errs) == 0 || !errors.Is(err, errs[len(errs)-1]) {
			errs = append(errs, err) // not the same (fatal) error again and again
		}
		stats.Rejected += n
		if stats.Message == "" {
			stats.Message = err.Error()
		}
	}
	clear(st.seen)
	st.startCache(app, s)
	n := 0
	for ri := range st.res {
		res := &st.res[ri]
		for si := res.sc0; si < res.sc1; si++ {
			sc := &st.scopes[si]
			for mi := sc.m0; mi < sc.m1; mi++ {
				m := &st.metrics[mi]
				opts := promstorage.AOptions{Metadata: m.meta, MetricFamilyName: m.names.family}
				// Floats may go by the series cache: sums, gauges and
				// classic histograms.
				cached := st.cache != nil && (m.kind == fastGauge || m.kind == fastSum || (m.kind == fastHistogram && !m.nhcb))
				byHandle := cached && st.startMetric(res, sc, m, s)
				for pi := m.p0; pi < m.p1; pi++ {
					if n++; n%128 == 0 {
						if err := ctx.Err(); err != nil {
							fail(err, st.npoints-n+1)
							return stats, errors.Join(errs...)
						}
					}
					p := &st.points[pi]
					if (m.kind == fastHistogram && !m.nhcb) || m.kind == fastSummary {
						var err error
						if m.kind == fastHistogram {
							err = st.appendHistogram(res, sc, m, p, s, app, cached, byHandle)
							byHandle = cached
						} else {
							err = st.appendSummary(res, sc, m, p, s, app)
						}
						if err != nil {
							fail(err, m.p1-pi)
							n += m.p1 - pi - 1
							break
						}
						continue
					}
					if m.kind == fastExponential || m.nhcb {
						lset := st.seriesLabels(res, sc, m, st.kvs[p.kv0:p.kv1], false, m.names.family, s)
						opts.Exemplars = st.exemplars(p, true)
						h := st.customBuckets(p)
						if m.kind == fastExponential {
							h = st.nativeHistogram(p)
						}
						if _, err := app.Append(0, lset, int64(p.st)/1_000_000, int64(p.t)/1_000_000, 0, h, nil, opts); err != nil {
							fail(err, m.p1-pi)
							n += m.p1 - pi - 1
							break
						}
						continue
					}
					v := p.v
					if p.flags&1 != 0 {
						v = math.Float64frombits(value.StaleNaN)
					}
					var key cacheKey
					if cached {
						key = st.pointKey(m, p)
						if byHandle && p.ex0 == p.ex1 {
							if hs := st.cache.get(key, 1, &st.one); len(hs) == 1 {
								st.vals = append(st.vals[:0], v)
								if st.sink.appendHandles(hs, int64(p.st)/1_000_000, int64(p.t)/1_000_000, st.vals, false) == 1 {
									continue
								}
							}
						}
					}
					lset := st.seriesLabels(res, sc, m, st.kvs[p.kv0:p.kv1], false, m.names.family, s)
					opts.Exemplars = nil
					if m.kind == fastSum {
						opts.Exemplars = st.exemplars(p, true)
					}
					if _, err := app.Append(0, lset, int64(p.st)/1_000_000, int64(p.t)/1_000_000, v, nil, nil, opts); err != nil {
						fail(err, m.p1-pi)
						n += m.p1 - pi - 1
						break
					}
					if cached {
						st.hbuf = append(st.hbuf[:0], st.sink.lastHandle())
						st.remember(key, 1)
						byHandle = true
					}
				}
			}
		}
		if !s.DisableTargetInfo && res.points {
			if err := st.appendTargetInfo(res, s, app); err != nil {
				if len(errs) == 0 || !errors.Is(err, errs[len(errs)-1]) {
					errs = append(errs, err)
				}
				if stats.Message == "" {
					stats.Message = err.Error()
				}
			}
		}
	}
	return stats, errors.Join(errs...)
}

// exemplars converts p's exemplars as the converter's getPromExemplars.
func (st *fastState) exemplars(p *fastPoint, sorted bool) []exemplar.Exemplar {
	if p.ex1 == p.ex0 {
		return nil
	}
	out := make([]exemplar.Exemplar, 0, p.ex1-p.ex0)
	var b labels.ScratchBuilder
	var arena []byte
	for _, e := range st.exs[p.ex0:p.ex1] {
		ts := time.Unix(0, int64(e.t)).UTC().UnixMilli()
		ex := exemplar.Exemplar{Ts: ts, HasTs: ts != 0, Value: e.v}
		b.Reset()
		runes := 0
		hasTrace, hasSpan := !allZero(e.trace), !allZero(e.span)
		if hasTrace {
			v := hex.EncodeToString(e.trace)
			runes += len("trace_id") + len(v)
			b.Add("trace_id", v)
		}
		if hasSpan {
			v := hex.EncodeToString(e.span)
			runes += len("span_id") + len(v)
			b.Add("span_id", v)
		}
		kvs := st.exKVs[e.kv0:e.kv1]
		overridden := func(k string) bool {
			return (hasTrace && k == "trace_id") || (hasSpan && k == "span_id")
		}
		for i := range kvs {
			if !overridden(kvs[i].key) {
				runes += utf8.RuneCountInString(kvs[i].key) + utf8.RuneCountInString(st.valueString(&kvs[i], &arena))
			}
		}
		if runes <= 128 {
			for i := range kvs {
				if !overridden(kvs[i].key) {
					b.Add(strings.Clone(kvs[i].key), strings.Clone(st.valueString(&kvs[i], &arena)))
				}
			}
		}
		b.Sort()
		ex.Labels = b.Labels()
		out = append(out, ex)
	}
	if sorted {
		slices.SortFunc(out, exemplar.Compare)
	}
	return out
}

// appendHistogram appends p's classic histogram series as the converter's
// addHistogramDataPoints.
func (st *fastState) appendHistogram(res *fastRes, sc *fastScope, m *fastMetric, p *fastPoint, s *prometheusremotewrite.Settings, app promstorage.AppenderV2, cached, byHandle bool) error {
	stale := p.flags&1 != 0
	counts, bounds := st.counts[p.bc0:p.bc1], st.bounds[p.eb0:p.eb1]
	nseries := int(bit(p.hasSum)) + 1 + min(len(bounds), len(counts)) + 1
	var key cacheKey
	from := 0                 // the series appended by handle
	var rest []unsafe.Pointer // the handles of the series after the first, to append by handle after it
	if cached {
		key = st.pointKey(m, p)
		if p.ex0 == p.ex1 {
			if hs := st.cache.get(key, nseries, &st.one); len(hs) == nseries {
				st.vals = st.vals[:0]
				if p.hasSum {
					st.vals = append(st.vals, p.v)
				}
				st.vals = append(st.vals, float64(p.count))
				var cumulative uint64
				for i := 0; i < len(bounds) && i < len(counts); i++ {
					cumulative += counts[i]
					st.vals = append(st.vals, float64(cumulative))
				}
				st.vals = append(st.vals, float64(p.count))
				if stale {
					for i := range st.vals {
						st.vals[i] = math.Float64frombits(value.StaleNaN)
					}
				}
				if !byHandle {
					// The family's first point in this request: its
					// first series by its labels (they carry the
					// metadata), the rest by handle.
					rest = hs[1:]
				} else if from = st.sink.appendHandles(hs, int64(p.st)/1_000_000, int64(p.t)/1_000_000, st.vals, false); from == nseries {
					return nil
				}
			}
		}
		st.hbuf = st.hbuf[:0]
	}
	// afterFirst appends the rest of the series by handle once the first
	// went by its labels; true: all of them.
	afterFirst := func() bool {
		if rest == nil {
			return false
		}
		n := st.sink.appendHandles(rest, int64(p.st)/1_000_000, int64(p.t)/1_000_000, st.vals[1:], true)
		rest, from = nil, 1+n
		return from == nseries
	}
	// remember collects the handle of each series appended by its labels.
	remember := func() {
		if cached && from == 0 {
			st.hbuf = append(st.hbuf, st.sink.lastHandle())
		}
	}
	idx := 0 // of the series
	st.ptArena = st.ptArena[:0]
	base := st.createAttributes(res, sc, m, st.kvs[p.kv0:p.kv1], false, s)
	n := len(base)
	// Room for le and __name__: series must not grow (allocate) a slice
	// for every bucket.
	st.lb = slices.Grow(base, 2)
	val := func(v float64) float64 {
		if stale {
			return math.Float64frombits(value.StaleNaN)
		}
		return v
	}
	series := func(name, le string) labels.Labels {
		lb := st.lb[:n]
		if le != "" {
			lb = setLabel(lb, "le", le)
		}
		lb = setLabel(lb, model.MetricNameLabel, name)
		// setLabel may change base's le or __name__ in place: every
		// later series sets both again (_sum and _count, without le,
		// come first).
		return st.overwrite(lb)
	}
	stMs, tMs := int64(p.st)/1_000_000, int64(p.t)/1_000_000
	opts := promstorage.AOptions{Metadata: m.meta, MetricFamilyName: m.names.family}
	if p.hasSum {
		if idx++; idx > from {
			if _, err := app.Append(0, series(m.names.sum, ""), stMs, tMs, val(p.v), nil, nil, opts); err != nil {
				return err
			}
			remember()
			if afterFirst() {
				return nil
			}
		}
	}
	if idx++; idx > from {
		if _, err := app.Append(0, series(m.names.count, ""), stMs, tMs, val(float64(p.count)), nil, nil, opts); err != nil {
			return err
		}
		remember()
		if afterFirst() {
			return nil
		}
	}
	exemplars := st.exemplars(p, false)
	next := 0
	var cumulative uint64
	for i := 0; i < len(bounds) && i < len(counts); i++ {
		bound := bounds[i]
		cumulative += counts[i]
		opts.Exemplars = opts.Exemplars[:0]
		for ; next < len(exemplars); next++ {
			if exemplars[next].Value > bound {
				break
			}
			opts.Exemplars = append(opts.Exemplars, exemplars[next])
		}
		if idx++; idx <= from {
			continue
		}
		slices.SortFunc(opts.Exemplars, exemplar.Compare)
		start := len(st.ptArena)
		st.ptArena = strconv.AppendFloat(st.ptArena, bound, 'f', -1, 64)
		if _, err := app.Append(0, series(m.names.bucket, alias(st.ptArena[start:])), stMs, tMs, val(float64(cumulative)), nil, nil, opts); err != nil {
			return err
		}
		remember()
	}
	opts.Exemplars = exemplars[next:]
	slices.SortFunc(opts.Exemplars, exemplar.Compare)
	if _, err := app.Append(0, series(m.names.bucket, "+Inf"), stMs, tMs, val(float64(p.count)), nil, nil, opts); err != nil {
		return err
	}
	remember()
	if cached && from == 0 {
		st.remember(key, nseries)
	}
	return nil
}

// allZero reports whether id (a trace or span ID) is empty: absent or zero.
func allZero(id []byte) bool {
	for _, c := range id {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendTargetInfo appends res's target_info as the converter's
// addResourceTargetInfo.
func (st *fastState) appendTargetInfo(res *fastRes, s *prometheusremotewrite.Settings, app promstorage.AppenderV2) error {
	kvs := st.kvs[res.kv0:res.kv1]
	nonIdentifying := 0
	for i := range kvs {
		if !identifying(kvs[i].key) {
			nonIdentifying++
		}
	}
	if nonIdentifying == 0 {
		return nil
	}
	lset := st.seriesLabels(res, nil, nil, kvs, true, st.targetName, s)
	if lset.Get(model.JobLabel) == "" && lset.Get(model.InstanceLabel) == "" {
		return nil
	}
	opts := promstorage.AOptions{
		Metadata:         metadata.Metadata{Type: model.MetricTypeGauge, Help: "Target metadata"},
		MetricFamilyName: st.targetName,
	}
	hash := lset.Hash()
	first, last, interval := targetInfoSpan(res, s)
	for t := first; t.Before(last); t = t.Add(interval) {
		key := fastTargetKey{hash: hash, ts: t.UnixMilli()}
		if _, ok := st.seen[key]; ok {
			continue
		}
		st.seen[key] = struct{}{}
		if _, err := app.Append(0, lset, 0, key.ts, 1, nil, nil, opts); err != nil {
			return err
		}
	}
	key := fastTargetKey{hash: hash, ts: last.UnixMilli()}
	if _, ok := st.seen[key]; ok {
		return nil
	}
	st.seen[key] = struct{}{}
	_, err := app.Append(0, lset, 0, key.ts, 1, nil, nil, opts)
	return err
}

// appendSummary appends p's series as the converter's
// addSummaryDataPoints.
func (st *fastState) appendSummary(res *fastRes, sc *fastScope, m *fastMetric, p *fastPoint, s *prometheusremotewrite.Settings, app promstorage.AppenderV2) error {
	st.ptArena = st.ptArena[:0]
	st.lb = slices.Grow(st.createAttributes(res, sc, m, st.kvs[p.kv0:p.kv1], false, s), 2)
	n := len(st.lb)
	val := func(v float64) float64 {
		if p.flags&1 != 0 {
			return math.Float64frombits(value.StaleNaN)
		}
		return v
	}
	// As in appendHistogram, setLabel may change base's quantile or
	// __name__ in place: every later series sets both again.
	series := func(name, quantile string) labels.Labels {
		lb := st.lb[:n]
		if quantile != "" {
			lb = setLabel(lb, "quantile", quantile)
		}
		return st.overwrite(setLabel(lb, model.MetricNameLabel, name))
	}
	stMs, tMs := int64(p.st)/1_000_000, int64(p.t)/1_000_000
	opts := promstorage.AOptions{Metadata: m.meta, MetricFamilyName: m.names.family}
	if _, err := app.Append(0, series(m.names.sum, ""), stMs, tMs, val(p.v), nil, nil, opts); err != nil {
		return err
	}
	if _, err := app.Append(0, series(m.names.count, ""), stMs, tMs, val(float64(p.count)), nil, nil, opts); err != nil {
		return err
	}
	qs := st.bounds[p.eb0:p.eb1]
	for i := 0; i+1 < len(qs); i += 2 {
		start := len(st.ptArena)
		st.ptArena = strconv.AppendFloat(st.ptArena, qs[i], 'f', -1, 64)
		if _, err := app.Append(0, series(m.names.family, alias(st.ptArena[start:])), stMs, tMs, val(qs[i+1]), nil, nil, opts); err != nil {
			return err
		}
	}
	return nil
}

// nativeHistogram converts exponential histogram point p as the
// converter's exponentialToNativeHistogram.
func (st *fastState) nativeHistogram(p *fastPoint) *histogram.Histogram {
	scale := p.scale
	var scaleDown int32
	if scale > histogram.ExponentialSchemaMax {
		scaleDown = scale - histogram.ExponentialSchemaMax
		scale = histogram.ExponentialSchemaMax
	}
	h := &histogram.Histogram{
		CounterResetHint: histogram.UnknownCounterReset,
		Schema:           scale,
		ZeroThreshold:    1e-128,
		ZeroCount:        p.zeroCount,
	}
	h.PositiveSpans, h.PositiveBuckets = bucketsLayout(st.counts[p.pb0:p.pb1], p.posOff, scaleDown, true)
	h.NegativeSpans, h.NegativeBuckets = bucketsLayout(st.counts[p.nb0:p.nb1], p.negOff, scaleDown, true)
	setCountAndSum(h, p)
	return h
}

// customBuckets converts classic histogram point p to a native histogram
// with custom buckets as the converter's
// explicitHistogramToCustomBucketsHistogram.
func (st *fastState) customBuckets(p *fastPoint) *histogram.Histogram {
	counts := st.counts[p.bc0:p.bc1]
	offset := 0
	for offset < len(counts) && counts[offset] == 0 {
		offset++
	}
	h := &histogram.Histogram{
		CounterResetHint: histogram.UnknownCounterReset,
		Schema:           histogram.CustomBucketsSchema,
		CustomValues:     slices.Clone(st.bounds[p.eb0:p.eb1]),
	}
	h.PositiveSpans, h.PositiveBuckets = bucketsLayout(counts[offset:], int32(offset), 0, false)
	setCountAndSum(h, p)
	return h
}

func setCountAndSum(h *histogram.Histogram, p *fastPoint) {
	if p.flags&1 != 0 {
		h.Sum = math.Float64frombits(value.StaleNaN)
		h.Count = value.StaleNaN
	} else {
		if p.hasSum {
			h.Sum = p.v
		}
		h.Count = p.count
	}
}

// bucketsLayout is the converter's convertBucketsLayout.
func bucketsLayout(bucketCounts []uint64, offset, scaleDown int32, adjustOffset bool) ([]histogram.Span, []int64) {
	if len(bucketCounts) == 0 {
		return nil, nil
	}
	var (
		spans     []histogram.Span
		deltas    []int64
		count     int64
		prevCount int64
	)
	appendDelta := func(count int64) {
		spans[len(spans)-1].Length++
		deltas = append(deltas, count-prevCount)
		prevCount = count
	}
	bucketIdx := offset>>scaleDown + 1
	lastIdx := bucketIdx - 1
	initialOffset := offset
	if adjustOffset {
		initialOffset = initialOffset>>scaleDown + 1
	}
	spans = append(spans, histogram.Span{Offset: initialOffset})
	appendBucket := func() {
		gap := bucketIdx - lastIdx - 1
		if gap > 2 {
			spans = append(spans, histogram.Span{Offset: gap})
		} else {
			for range gap {
				appendDelta(0)
			}
		}
		appendDelta(count)
		lastIdx = bucketIdx
	}
	for i := range bucketCounts {
		next := (int32(i)+offset)>>scaleDown + 1
		if bucketIdx == next {
			count += int64(bucketCounts[i])
			continue
		}
		if count != 0 {
			appendBucket()
		}
		count = int64(bucketCounts[i])
		bucketIdx = next
	}
	appendBucket()
	return spans, deltas
}
