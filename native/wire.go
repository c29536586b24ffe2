package native

// The wire format the native write and query share: the request body's
// headers, strict JSON objects, times and values.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/luminate-io/luminate/apierror"
)

// isJSON reports whether a Content-Type is application/json.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// checkBody refuses a request body native does not read: a Content-Type
// other than application/json (none is taken for JSON) and any
// Content-Encoding but identity.
func checkBody(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return apierror.New(apierror.UnsupportedMediaType, "Content-Type %q is not supported: send application/json", ct)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return apierror.New(apierror.UnsupportedMediaType, "Content-Encoding %q is not supported: send the JSON uncompressed", enc)
	}
	return nil
}

// decodeObject reads data, one JSON object and nothing after it, member
// by member in document order: member must consume the value of each
// (dec.Decode). Names are matched exactly (encoding/json would match
// struct fields case-insensitively) and a member given twice is an
// error. field names the object in errors, "" for the whole body; path is
// the member's own name in errors ("filters[1].op"). Errors are
// InvalidArgument *apierror.Error values naming the field.
func decodeObject(data []byte, field string, member func(dec *json.Decoder, name, path string) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err, field)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		where := field
		if where == "" {
			where = "the body"
		}
		return apierror.Field(field, "%s must be a JSON object", where)
	}
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err, field)
		}
		name, _ := tok.(string) // object keys are always strings
		path := name
		if field != "" {
			path = field + "." + name
		}
		if slices.Contains(seen, name) {
			return apierror.Field(path, "field %s given twice", path)
		}
		seen = append(seen, name)
		if err := member(dec, name, path); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return syntaxError(err, field)
	}
	if _, err := dec.Token(); err != io.EOF {
		return apierror.Field(field, "unexpected data after the JSON object")
	}
	return nil
}

// jsonField is one member of a JSON object, in document order.
type jsonField struct {
	name  string
	value json.RawMessage
}

// readObject reads data, a JSON object, into its members in document order
// (decodeObject). Members whose value is null are left out, as if absent.
func readObject(data []byte, field string) ([]jsonField, error) {
	var out []jsonField
	err := decodeObject(data, field, func(dec *json.Decoder, name, path string) error {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return syntaxError(err, path)
		}
		if string(v) != "null" {
			out = append(out, jsonField{name: name, value: v})
		}
		return nil
	})
	return out, err
}

// syntaxError is a JSON decoding error at field as an InvalidArgument.
func syntaxError(err error, field string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return apierror.Field(field, "truncated JSON body")
	}
	if field == "" {
		return apierror.Field(field, "invalid JSON body: %v", err)
	}
	return apierror.Field(field, "invalid JSON in %s: %v", field, err)
}

// parseTimestamp decodes a time: an RFC 3339 string or a whole number of
// Unix milliseconds, as Unix milliseconds. An absent value (empty or null)
// is def. name names the value in the error, a plain error the caller
// places (a field of a query, an item of a write).
func parseTimestamp(raw json.RawMessage, name string, def int64) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%s must be an RFC 3339 string or Unix milliseconds", name)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, fmt.Errorf("%s %q is not RFC 3339 (2026-11-26T10:00:00Z) nor Unix milliseconds", name, shortText(s))
		}
		return t.UnixMilli(), nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %s is not a whole number of Unix milliseconds nor an RFC 3339 string", name, shortText(string(raw)))
	}
	return ms, nil
}

// Float is a sample value on the wire: a JSON number, or one of the
// strings "NaN", "+Inf" and "-Inf", both ways.
type Float float64

// MarshalJSON writes f as a number, or a string for the non-finite values.
func (f Float) MarshalJSON() ([]byte, error) { return appendFloat(nil, float64(f)), nil }

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Float) UnmarshalJSON(b []byte) error {
	v, err := parseFloat(b)
	*f = Float(v)
	return err
}

// appendFloat appends v as Float.MarshalJSON writes it.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// parseFloat decodes a value: a JSON number or "NaN", "+Inf", "-Inf".
func parseFloat(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, errors.New("value is required")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("value %s: %w", shortText(string(raw)), err)
		}
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "+Inf":
			return math.Inf(1), nil
		case "-Inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("value %q is neither a number nor \"NaN\", \"+Inf\" or \"-Inf\"", shortText(s))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !json.Valid(raw) {
		return 0, fmt.Errorf("value %s is not a number", shortText(string(raw)))
	}
	return v, nil
}

// shortText bounds what an error message repeats of a request: at most
// 64 bytes, cut at a character boundary.
func shortText(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
