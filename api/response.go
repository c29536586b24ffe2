package api

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/luminate-io/luminate/apierror"
)

// bearerChallenge is the WWW-Authenticate header of every 401 (RFC 6750).
const bearerChallenge = `Bearer realm="luminate"`

// errorBody is the "error" object of the native error envelope.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// errorEnvelope is the native API's error response:
//
//	{"status":"error","error":{"code":"invalid_argument","message":"...","field":"..."}}
type errorEnvelope struct {
	Status string    `json:"status"`
	Error  errorBody `json:"error"`
}

// WriteError writes err as the native error envelope. Status code, error
// code, offending field and Retry-After come from apierror.Classify; a 401
// also carries WWW-Authenticate: Bearer. Internal errors are logged with the
// request ID and their text is not sent to the client.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	info := apierror.Classify(err)
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.err = err
	}
	msg := err.Error()
	if info.Kind == apierror.Internal {
		if logger := loggerFrom(r.Context()); logger != nil {
			logger.ErrorContext(r.Context(), "internal error", "err", err)
		}
		msg = "internal error"
		if id := RequestID(r.Context()); id != "" {
			msg += "; the server log has the details under request_id " + id
		}
	}
	apierror.SetRetryAfter(w, info)
	if info.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", bearerChallenge)
	}
	writeEnvelope(w, r, info.Status, errorBody{Code: info.Kind.Code(), Message: msg, Field: info.Field})
}

func writeEnvelope(w http.ResponseWriter, r *http.Request, status int, body errorBody) {
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok && ex.err == nil {
		ex.err = errorString(body.Message)
	}
	WriteJSON(w, status, errorEnvelope{Status: "error", Error: body})
}

type errorString string

func (e errorString) Error() string { return string(e) }

// WriteJSON writes v as a JSON response with the given status. A value that
// cannot be encoded becomes a 500 with the native error envelope.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the body is JSON, never HTML
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		_ = enc.Encode(errorEnvelope{Status: "error", Error: errorBody{
			Code:    apierror.Internal.Code(),
			Message: "encode response: " + err.Error(),
		}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
