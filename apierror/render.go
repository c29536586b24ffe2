package apierror

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
)

// Format is a wire format of error responses.
type Format int

// The wire formats.
const (
	// Native is the native API's envelope:
	//
	//	{"status":"error","error":{"code":"invalid_argument","message":"...","field":"...","limit":"..."}}
	Native Format = iota
	// Prometheus is the Prometheus HTTP API's envelope, which Grafana and
	// promtool read:
	//
	//	{"status":"error","errorType":"bad_data","error":"..."}
	Prometheus
	// Text is a plain-text body, as remote write and remote read senders
	// expect.
	Text
	// OTLPProtobuf and OTLPJSON are OTLP/HTTP's error body, a
	// google.rpc.Status {code, message} in the encoding of the request
	// (Content-Type application/x-protobuf or application/json).
	OTLPProtobuf
	OTLPJSON
)

// BearerChallenge is the WWW-Authenticate header of every 401 (RFC 6750).
const BearerChallenge = `Bearer realm="luminate"`

// InternalMessage is what a client is told of an internal error: never
// its text, which stays in the server log under the request's ID.
func InternalMessage(requestID string) string {
	if requestID == "" {
		return "internal error"
	}
	return "internal error; the server log has the details under request_id " + requestID
}

// Write writes err in format f and returns how Classify classified it:
// its status, Retry-After when it has one, WWW-Authenticate on a 401, and
// for an internal error InternalMessage in place of its text (log the
// error itself). requestID names the request in that message.
func Write(w http.ResponseWriter, f Format, err error, requestID string) Info {
	info := Classify(err)
	msg := err.Error()
	if info.Kind == Internal {
		msg = InternalMessage(requestID)
	}
	SetRetryAfter(w, info)
	if info.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", BearerChallenge)
	}
	switch f {
	case Prometheus:
		// Byte for byte as Prometheus writes it: HTML escaped, no newline.
		b, _ := json.Marshal(promError{Status: "error", ErrorType: info.Kind.PromType(), Error: msg}) // strings: cannot fail
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(info.Status)
		_, _ = w.Write(b)
	case OTLPProtobuf, OTLPJSON:
		b, ct := RPCStatus(info.Kind, msg, f == OTLPJSON)
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(info.Status)
		_, _ = w.Write(b)
	case Text:
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(info.Status)
		_, _ = io.WriteString(w, msg+"\n")
	default:
		WriteJSON(w, info.Status, NativeEnvelope{Status: "error", Error: &NativeError{
			Code: info.Kind.Code(), Message: msg, Field: info.Field, Limit: info.Limit,
		}})
	}
	return info
}

// RPCStatus encodes a google.rpc.Status of kind k and message msg, as
// protobuf (field 1 code, varint; field 2 message, bytes) or as JSON, and
// returns it with its Content-Type. The code is the gRPC code of k.
func RPCStatus(k Kind, msg string, asJSON bool) (body []byte, contentType string) {
	code := rpcCodes[k]
	if asJSON {
		b, _ := json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}{int(code), msg}) // an int and a string: cannot fail
		return b, "application/json"
	}
	b := make([]byte, 0, len(msg)+16)
	if code != 0 {
		b = binary.AppendUvarint(append(b, 0x08), uint64(code))
	}
	if msg != "" {
		b = append(binary.AppendUvarint(append(b, 0x12), uint64(len(msg))), msg...)
	}
	return b, "application/x-protobuf"
}

// rpcCodes are the gRPC status codes of the kinds
// (google.golang.org/grpc/codes).
var rpcCodes = map[Kind]uint32{
	Internal:             13, // INTERNAL
	InvalidArgument:      3,  // INVALID_ARGUMENT
	Unauthenticated:      16, // UNAUTHENTICATED
	PermissionDenied:     7,  // PERMISSION_DENIED
	NotFound:             5,  // NOT_FOUND
	TooLarge:             3,  // INVALID_ARGUMENT: the request must change, not be retried
	UnsupportedMediaType: 3,
	Execution:            3,
	RateLimited:          8,  // RESOURCE_EXHAUSTED
	Unavailable:          14, // UNAVAILABLE
	Timeout:              4,  // DEADLINE_EXCEEDED
	Canceled:             1,  // CANCELLED
	RequestTimeout:       3,
	MethodNotAllowed:     12, // UNIMPLEMENTED
}

// NativeEnvelope is the native API's error response.
type NativeEnvelope struct {
	Status string       `json:"status"` // "error"
	Error  *NativeError `json:"error"`
}

// NativeError is the "error" object of the native envelope.
type NativeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Limit   string `json:"limit,omitempty"`
}

// promError is Prometheus' error envelope.
type promError struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

// WriteJSON writes v as a JSON response with the given status. A value
// that cannot be encoded becomes a 500 in the native envelope.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the body is JSON, never HTML
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(NativeEnvelope{Status: "error", Error: &NativeError{
			Code: Internal.Code(), Message: "encode response: " + err.Error(),
		}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
