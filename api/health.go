package api

import (
	"context"
	"net/http"
	"time"
)

// healthyHandler answers 200 for as long as the process serves HTTP.
func healthyHandler(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "Luminate is Healthy.\n")
}

// readyHandler answers 200 when storage is ready and 503 with the reason
// otherwise. The check is bounded by timeout.
func readyHandler(store ReadyChecker, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := store.Ready(ctx); err != nil {
			if logger := loggerFrom(r.Context()); logger != nil {
				logger.WarnContext(r.Context(), "not ready", "err", err)
			}
			writeText(w, http.StatusServiceUnavailable, "Luminate is not ready: "+err.Error()+"\n")
			return
		}
		writeText(w, http.StatusOK, "Luminate is Ready.\n")
	})
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
