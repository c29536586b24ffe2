package api

import (
	"net/http"

	"github.com/luminate-io/luminate/apierror"
)

// WriteError writes err as the native error envelope (apierror.Write).
// Internal errors are logged with the request ID and their text is not
// sent to the client.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.err = err
	}
	Route{Format: apierror.Native}.renderError(w, r, err)
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) { apierror.WriteJSON(w, status, v) }
