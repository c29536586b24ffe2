package remotewrite

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// TestWriteLabelsUTF8 holds both protocols to the same answers about label
// encodings, now that the decoders spare the Validator its UTF-8 checks of
// labels they found all ASCII (1.0) or among symbols all valid (2.0):
// ASCII and UTF-8 series are stored, a series with an invalid name or
// value is rejected with the reason and message Validator.Series gives it,
// and its neighbours in the request are not disturbed.
func TestWriteLabelsUTF8(t *testing.T) {
	type series struct {
		kv     []string
		reject Reason
	}
	cases := []series{
		{kv: []string{"__name__", "ascii", "job", "a"}},
		{kv: []string{"__name__", "utf8", "région", "ü"}},
		// A value of 128 bytes or more has a length of two bytes, with
		// the top bit set: it is checked too.
		{kv: []string{"__name__", "long", "job", strings.Repeat("a", 200)}},
		{kv: []string{"__name__", "badvalue", "job", "\xc3\x28"}, reject: ReasonInvalidLabelValue},
		{kv: []string{"__name__", "badname", "\xfejob", "a"}, reject: ReasonInvalidLabelName},
		{kv: []string{"__name__", "bad\xffmetric"}, reject: ReasonInvalidMetricName},
		// Valid UTF-8, but no label name.
		{kv: []string{"__name__", "emptyname", "", "a"}, reject: ReasonInvalidLabelName},
	}
	now := time.Now().Truncate(time.Millisecond)
	for _, proto := range []string{"1.0", "2.0"} {
		for _, only := range []bool{false, true} { // every case alone (2.0: a table of valid symbols), then all together
			for i, c := range cases {
				if !only && i > 0 {
					break
				}
				t.Run(proto, func(t *testing.T) {
					batch := cases
					if only {
						batch = []series{c}
					}
					store := openStore(t, nil)
					h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
					var w interface{ Result() *http.Response }
					var body string
					if proto == "1.0" {
						req := &prompb.WriteRequest{}
						for _, s := range batch {
							req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: seriesLabels(s.kv...), Samples: samplesAt(now, 1)})
						}
						r := post(h, &writer, encode(t, req), nil)
						w, body = r, r.Body.String()
					} else {
						req := newV2Request()
						for _, s := range batch {
							req.add(s.kv...).Samples = samplesV2At(now, 1)
						}
						r := postV2(h, &writer, req.encode(t), nil)
						w, body = r, r.Body.String()
					}
					got := readBack(t, store, writer.Tenant)
					rejected := 0
					for _, s := range batch {
						ls := lbls(s.kv...)
						_, verr := NewValidator(testConfig(t)).Series(ls)
						stored := false
						for k := range got {
							stored = stored || strings.Contains(k, s.kv[1])
						}
						if s.reject == "" {
							require.NoError(t, verr)
							require.True(t, stored, "%q stored: %v", s.kv, got)
							continue
						}
						rejected++
						require.False(t, stored, "%q", s.kv)
						var rej *Rejection
						require.ErrorAs(t, verr, &rej)
						require.Equal(t, s.reject, rej.Reason)
						if rejected == 1 { // the response names the first rejection
							require.Contains(t, body, rej.Error())
						}
					}
					if rejected > 0 {
						require.Equal(t, http.StatusBadRequest, w.Result().StatusCode, body)
					} else {
						require.Less(t, w.Result().StatusCode, 300, body)
					}
				})
			}
		}
	}
}

func seriesLabels(kv ...string) []prompb.Label { return series(kv...) }
