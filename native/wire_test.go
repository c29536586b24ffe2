package native

import (
	"encoding/json"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
)

func TestCheckBody(t *testing.T) {
	for _, tc := range []struct{ ct, enc, want string }{
		{"", "", ""},
		{"application/json; charset=utf-8", "identity", ""},
		{"text/plain", "", `Content-Type "text/plain" is not supported: send application/json`},
		{"application/json", "gzip", `Content-Encoding "gzip" is not supported: send the JSON uncompressed`},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.Header.Set("Content-Type", tc.ct)
		r.Header.Set("Content-Encoding", tc.enc)
		err := checkBody(r)
		if tc.want == "" {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, tc.want)
		require.Equal(t, apierror.UnsupportedMediaType, apierror.Classify(err).Kind)
	}
}

func TestReadObject(t *testing.T) {
	fs, err := readObject([]byte(` {"a":1,"b":null,"c":{"d":[2]}} `), "")
	require.NoError(t, err)
	require.Equal(t, []jsonField{{"a", json.RawMessage(`1`)}, {"c", json.RawMessage(`{"d":[2]}`)}}, fs)
	for body, want := range map[string]string{
		`[1]`:                "the body must be a JSON object",
		`{"a":1,"a":null}`:   "field x.a given twice",
		`{"a":1} {}`:         "unexpected data after the JSON object",
		`{"a":`:              "truncated JSON body",
		`{"a":1,}`:           "invalid character '}' looking for beginning of object key string",
		`{"a":1,"A":2,"a":3`: "field x.a given twice",
	} {
		field := "x"
		if strings.HasPrefix(body, "[") {
			field = ""
		}
		_, err := readObject([]byte(body), field)
		require.ErrorContains(t, err, want, body)
	}
}

func TestParseTimestamp(t *testing.T) {
	for raw, want := range map[string]int64{`null`: 7, ``: 7, `1000`: 1000, `"1970-01-01T00:00:01.5009Z"`: 1500, `-1`: -1} {
		got, err := parseTimestamp(json.RawMessage(raw), "timestamp", 7)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	for raw, want := range map[string]string{
		`"yesterday"`:                       `start "yesterday" is not RFC 3339 (2026-11-26T10:00:00Z) nor Unix milliseconds`,
		`1.5`:                               `start 1.5 is not a whole number of Unix milliseconds nor an RFC 3339 string`,
		`"` + strings.Repeat("é", 40) + `"`: `start "` + strings.Repeat("é", 32) + `..." is not RFC 3339`,
	} {
		_, err := parseTimestamp(json.RawMessage(raw), "start", 0)
		require.ErrorContains(t, err, want, raw)
	}
}

func TestFloat(t *testing.T) {
	for _, v := range []float64{0, -1.5, 1e300, math.Inf(1), math.Inf(-1)} {
		b, err := json.Marshal(Float(v))
		require.NoError(t, err)
		var got Float
		require.NoError(t, json.Unmarshal(b, &got), string(b))
		require.Equal(t, v, float64(got))
	}
	b, _ := json.Marshal([]Float{Float(math.NaN()), 2})
	require.Equal(t, `["NaN",2]`, string(b))
	var f Float
	require.EqualError(t, json.Unmarshal([]byte(`"Inf"`), &f), `value "Inf" is neither a number nor "NaN", "+Inf" or "-Inf"`)
}
