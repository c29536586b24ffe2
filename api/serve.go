package api

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/mux"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// format is the wire format of rt's responses to r.
func (rt Route) format(r *http.Request) apierror.Format {
	if rt.FormatOf != nil {
		return rt.FormatOf(r)
	}
	return rt.Format
}

// renderError writes err in the route's format. Internal errors are
// logged with the request ID; the client sees only that ID.
func (rt Route) renderError(w http.ResponseWriter, r *http.Request, err error) {
	if apierror.Classify(err).Kind == apierror.Internal {
		if logger := loggerFrom(r.Context()); logger != nil {
			logger.ErrorContext(r.Context(), "internal error", "err", err)
		}
	}
	apierror.Write(w, rt.format(r), err, RequestID(r.Context()))
}

// nativeError answers what no route does, and the built-in endpoints'
// refusals, in the native envelope.
func nativeError(w http.ResponseWriter, r *http.Request, err error) {
	fail(w, r, Route{Format: apierror.Native}.renderError, err)
}

// withHeaders sets the route's own headers before anything else runs.
func withHeaders(set func(http.ResponseWriter, *http.Request), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set(w, r)
		next.ServeHTTP(w, r)
	})
}

// serveTenant runs a data route for the authenticated principal in the
// request context: query admission, the tenant's view of the store, Serve,
// and the rendering of its result or error. The bytes of its body count
// against bodies (bodies.go) until the answer is written.
func serveTenant(rt Route, queries QueryAdmitter, tenants TenantOpener, bodies *bodyBudget, render func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := tenancy.FromContext(r.Context())
		if err != nil { // authenticate put it there: cannot happen
			fail(w, r, render, err)
			return
		}
		var giveBack func()
		r.Body, giveBack = bodies.body(p.Tenant, r.Body)
		defer giveBack()
		if rt.Query && queries != nil {
			if err := queries.AllowQuery(p.Tenant); err != nil {
				fail(w, r, render, err)
				return
			}
		}
		if rt.ReadBody > 0 && r.Body != nil {
			body, err := rt.readBody(w, r)
			if err != nil {
				fail(w, r, render, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if rt.Query && queries != nil {
			release, err := queries.AcquireQuery(r.Context(), p.Tenant)
			if err != nil {
				fail(w, r, render, err)
				return
			}
			defer release()
		}
		for k, v := range mux.Vars(r) { // the path template's values, for r.PathValue
			r.SetPathValue(k, v)
		}
		res, err := rt.Serve(r, storage.Tenant{Principal: p, Store: tenants.ForTenant(p.Tenant)})
		if err != nil {
			fail(w, r, render, err)
			return
		}
		respond(w, r, rt.format(r), res, render)
	})
}

// readBody reads the whole body of a ReadBody route: at most ReadBody
// bytes, within ReadBodyTimeout if set. The body is closed unread on an
// error, so that the connection closes after the answer.
func (rt Route) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	tooLarge := func() error {
		return apierror.Limit(apierror.TooLarge, rt.ReadBodySetting, "request body larger than %d bytes", rt.ReadBody)
	}
	if r.ContentLength > rt.ReadBody {
		return nil, tooLarge()
	}
	rc := http.NewResponseController(w)
	deadline := rt.ReadBodyTimeout > 0 && rc.SetReadDeadline(time.Now().Add(rt.ReadBodyTimeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.ReadBody))
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		if deadline { // the deadline is the body's only
			err = rc.SetReadDeadline(time.Time{})
		}
		return body, err
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case deadline && errors.Is(err, os.ErrDeadlineExceeded):
		return nil, apierror.Limit(apierror.InvalidArgument, rt.ReadBodyTimeoutSetting, "request body not received within %s", rt.ReadBodyTimeout)
	}
	return nil, apierror.Wrap(apierror.InvalidArgument, err, "read request body")
}

// respond renders a Serve result: nil as 204, a Responder by itself,
// anything else as JSON in the format's success envelope.
func respond(w http.ResponseWriter, r *http.Request, f apierror.Format, res any, render func(http.ResponseWriter, *http.Request, error)) {
	switch v := res.(type) {
	case nil:
		w.WriteHeader(http.StatusNoContent)
	case Responder:
		if err := v.Respond(w, r); err != nil {
			if rec, ok := w.(*responseRecorder); !ok || rec.status == 0 {
				fail(w, r, render, err)
				return
			}
			if logger := loggerFrom(r.Context()); logger != nil {
				logger.WarnContext(r.Context(), "response failed after it started; aborting it", "err", err)
			}
			if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
				ex.err = err
			}
			markAborted(w)
			panic(http.ErrAbortHandler)
		}
	default:
		if f == apierror.Prometheus {
			v = promSuccess{Status: "success", Data: v}
		}
		apierror.WriteJSON(w, http.StatusOK, v)
	}
}

// promSuccess is Prometheus' success envelope.
type promSuccess struct {
	Status string `json:"status"`
	Data   any    `json:"data"`
}
