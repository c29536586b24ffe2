package promql

import (
	"net/http"
	"strconv"
	"strings"

	jsoniter "github.com/json-iterator/go"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	pql "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"
	"github.com/prometheus/prometheus/util/stats"
)

// The encoders here write exactly what Prometheus' web/api/v1 JSON codec
// writes for the same values: timestamps as float seconds, sample values
// as strings ("NaN", "+Inf", "1e-07"), labels as objects in label order.
// Other data goes through jsoniter configured as the standard library.

// queryData is the data of query and query_range.
type queryData struct {
	resultType parser.ValueType
	result     parser.Value
	stats      stats.QueryStats // nil unless the request asked for stats
}

// seriesList is the data of /series.
type seriesList []labels.Labels

// exemplarList is the data of /query_exemplars.
type exemplarList []exemplar.QueryResult

// metadataMap is the data of /metadata: the entries of each metric family.
type metadataMap = map[string][]metadata.Metadata

func writeData(s *jsoniter.Stream, data any) {
	switch d := data.(type) {
	case *queryData:
		s.WriteObjectStart()
		s.WriteObjectField("resultType")
		s.WriteString(string(d.resultType))
		s.WriteMore()
		s.WriteObjectField("result")
		writeValue(s, d.result)
		if d.stats != nil {
			s.WriteMore()
			s.WriteObjectField("stats")
			s.WriteVal(d.stats)
		}
		s.WriteObjectEnd()
	case seriesList:
		s.WriteArrayStart()
		for i, ls := range d {
			if i > 0 {
				s.WriteMore()
			}
			writeLabels(s, ls)
		}
		s.WriteArrayEnd()
	case exemplarList:
		writeExemplars(s, d)
	default:
		s.WriteVal(d)
	}
}

// writeExemplars writes
// [{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"1","timestamp":1.5}]}],
// as Prometheus' codec writes []exemplar.QueryResult.
func writeExemplars(s *jsoniter.Stream, res exemplarList) {
	s.WriteArrayStart()
	for i, r := range res {
		if i > 0 {
			s.WriteMore()
		}
		s.WriteObjectStart()
		s.WriteObjectField("seriesLabels")
		writeLabels(s, r.SeriesLabels)
		s.WriteMore()
		s.WriteObjectField("exemplars")
		if r.Exemplars == nil {
			s.WriteNil()
		} else {
			s.WriteArrayStart()
			for j, e := range r.Exemplars {
				if j > 0 {
					s.WriteMore()
				}
				s.WriteObjectStart()
				s.WriteObjectField("labels")
				writeLabels(s, e.Labels)
				s.WriteMore()
				s.WriteObjectField("value")
				jsonutil.MarshalFloat(e.Value, s)
				s.WriteMore()
				s.WriteObjectField("timestamp")
				jsonutil.MarshalTimestamp(e.Ts, s)
				s.WriteObjectEnd()
			}
			s.WriteArrayEnd()
		}
		s.WriteObjectEnd()
	}
	s.WriteArrayEnd()
}

func writeValue(s *jsoniter.Stream, v parser.Value) {
	switch v := v.(type) {
	case pql.Matrix:
		s.WriteArrayStart()
		for i, ser := range v {
			if i > 0 {
				s.WriteMore()
			}
			writeSeries(s, ser)
		}
		s.WriteArrayEnd()
	case pql.Vector:
		s.WriteArrayStart()
		for i, smp := range v {
			if i > 0 {
				s.WriteMore()
			}
			writeSample(s, smp)
		}
		s.WriteArrayEnd()
	case pql.Scalar:
		b, err := v.MarshalJSON()
		if err != nil {
			s.Error = err
			return
		}
		_, _ = s.Write(b)
	case pql.String:
		b, err := v.MarshalJSON()
		if err != nil {
			s.Error = err
			return
		}
		_, _ = s.Write(b)
	default:
		s.WriteVal(v)
	}
}

// writeSeries writes {"metric":{...},"values":[[t,"v"],...],"histograms":[...]}.
func writeSeries(s *jsoniter.Stream, ser pql.Series) {
	s.WriteObjectStart()
	s.WriteObjectField("metric")
	writeLabels(s, ser.Metric)
	for i, p := range ser.Floats {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField("values")
			s.WriteArrayStart()
		}
		s.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, s)
		s.WriteMore()
		jsonutil.MarshalFloat(p.F, s)
		s.WriteArrayEnd()
	}
	if len(ser.Floats) > 0 {
		s.WriteArrayEnd()
	}
	for i, p := range ser.Histograms {
		s.WriteMore()
		if i == 0 {
			s.WriteObjectField("histograms")
			s.WriteArrayStart()
		}
		s.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, s)
		s.WriteMore()
		jsonutil.MarshalHistogram(p.H, s)
		s.WriteArrayEnd()
	}
	if len(ser.Histograms) > 0 {
		s.WriteArrayEnd()
	}
	s.WriteObjectEnd()
}

// writeSample writes {"metric":{...},"value":[t,"v"]} (or "histogram").
func writeSample(s *jsoniter.Stream, smp pql.Sample) {
	s.WriteObjectStart()
	s.WriteObjectField("metric")
	writeLabels(s, smp.Metric)
	s.WriteMore()
	if smp.H == nil {
		s.WriteObjectField("value")
	} else {
		s.WriteObjectField("histogram")
	}
	s.WriteArrayStart()
	jsonutil.MarshalTimestamp(smp.T, s)
	s.WriteMore()
	if smp.H == nil {
		jsonutil.MarshalFloat(smp.F, s)
	} else {
		jsonutil.MarshalHistogram(smp.H, s)
	}
	s.WriteArrayEnd()
	s.WriteObjectEnd()
}

// writeLabels writes a label set as an object, without HTML escaping, as
// Prometheus does.
func writeLabels(s *jsoniter.Stream, ls labels.Labels) {
	s.WriteObjectStart()
	i := 0
	ls.Range(func(l labels.Label) {
		if i > 0 {
			s.WriteMore()
		}
		i++
		s.WriteString(l.Name)
		s.WriteRaw(":")
		s.WriteString(l.Value)
	})
	s.WriteObjectEnd()
}

// minGzipBytes is the smallest body worth compressing.
const minGzipBytes = 1024

// writeBody writes a JSON body with status 200, gzip-compressed when the
// client accepts it and the body is large enough to gain from it.
func (a *API) writeBody(w http.ResponseWriter, r *http.Request, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	if len(body) < minGzipBytes || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		_, _ = w.Write(body)
		return
	}
	h.Set("Content-Encoding", "gzip")
	gz, _ := a.gzip.Get().(*gzip.Writer)
	if gz == nil {
		gz = gzip.NewWriter(w)
	} else {
		gz.Reset(w)
	}
	_, _ = gz.Write(body)
	_ = gz.Close()
	gz.Reset(nil)
	a.gzip.Put(gz)
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip.
func acceptsGzip(header string) bool {
	for header != "" {
		var enc string
		enc, header, _ = strings.Cut(header, ",")
		enc, params, _ := strings.Cut(enc, ";")
		if strings.TrimSpace(enc) != "gzip" {
			continue
		}
		_, q, found := strings.Cut(strings.ReplaceAll(params, " ", ""), "q=")
		if !found {
			return true
		}
		v, err := strconv.ParseFloat(q, 64)
		return err == nil && v > 0
	}
	return false
}
