package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// StorageChecker is what the health endpoints need from the store.
// storage.MetricsStore implements it.
type StorageChecker interface {
	// Ready returns nil when the store serves reads (see
	// storage.MetricsStore).
	Ready(ctx context.Context) error
	// Health reports the read and the write path.
	Health(ctx context.Context) storage.Health
}

// KeyReporter reports the token verification keys. *tenancy.Verifier
// implements it.
type KeyReporter interface {
	KeyStatus() tenancy.KeyStatus
}

// LimitsReporter reports the last load of the per-tenant limits overrides
// file. *tenancy.Limits implements it.
type LimitsReporter interface {
	LastReload() tenancy.ReloadStatus
}

// healthyHandler answers 200 for as long as the process serves HTTP.
func healthyHandler(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "Luminate is Healthy.\n")
}

// readyHandler answers 200 when storage serves reads and 503 otherwise:
// with the progress of a store still opening (storage.StartingError), and
// for any other reason with a fixed text, the reason going to the log. A store that cannot write but reads stays ready: taking
// the instance out of its Service would stop the reads too, while writers
// get 503 with Retry-After and retry (GET /api/v1/status/health tells
// the two apart). The check is bounded by timeout.
func readyHandler(store StorageChecker, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		if err := store.Ready(ctx); err != nil {
			if starting := (*storage.StartingError)(nil); errors.As(err, &starting) {
				writeText(w, http.StatusServiceUnavailable, "Luminate is starting: "+starting.Status+"\n")
				return
			}
			// The reason (a path, a server address, a driver's error) is
			// for the log and the operator's health report, not for
			// whoever can reach the port.
			if logger := loggerFrom(r.Context()); logger != nil {
				logger.WarnContext(r.Context(), "not ready", "err", err)
			}
			writeText(w, http.StatusServiceUnavailable, "Luminate is not ready; the log and the operator's GET /api/v1/status/health say why.\n")
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

// Components of the health report.
const (
	componentStorageRead  = "storage_read"
	componentStorageWrite = "storage_write"
	componentAuthKeys     = "auth_keys"
	componentLimitsFile   = "limits_file"
)

// healthReport is the body of GET /api/v1/status/health:
//
//	{"status":"degraded","components":{"storage_read":{"status":"ok","message":"..."},
//	 "storage_write":{"status":"down","message":"disk almost full: ..."}, ...}}
//
// Components only for operators: to anyone else the report is
// {"status":"degraded"}, since the messages name paths, free bytes, files
// and the errors of the store.
type healthReport struct {
	Status     storage.Status             `json:"status"`
	Components map[string]componentHealth `json:"components,omitempty"`
}

type componentHealth struct {
	Status  storage.Status `json:"status"`
	Message string         `json:"message"`
}

// healthChecker builds the health report.
type healthChecker struct {
	store   StorageChecker
	keys    KeyReporter    // nil: not reported
	limits  LimitsReporter // nil: not reported
	timeout time.Duration
	// auth, when set, decides who sees the components: principals with
	// tenancy.ScopeOperator. nil shows them to every request (the
	// internal router).
	auth Authenticator
}

// ServeHTTP answers the report: 200 when Luminate serves (every component
// ok or degraded, or only the write path down: reads go on), 503 when it
// does not (storage reads or token verification down). The components
// are shown to operators only; a request without credentials gets the
// overall status, one with invalid credentials 401.
func (h healthChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	detailed, err := h.operator(r)
	if err != nil {
		nativeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rep := h.report(ctx)
	if !detailed {
		rep.Components = nil
	}
	status := http.StatusOK
	if rep.Status == storage.StatusDown {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	apierror.WriteJSON(w, status, rep)
}

// operator reports whether r may see the components. A request without an
// Authorization header is not authenticated at all (probes and load
// balancers send none; they would count as authentication failures), and
// sees them only when authentication is disabled.
func (h healthChecker) operator(r *http.Request) (bool, error) {
	if h.auth == nil {
		return true, nil
	}
	if len(r.Header.Values("Authorization")) == 0 {
		return h.keys != nil && h.keys.KeyStatus().Disabled, nil
	}
	p, err := h.auth.Authenticate(r)
	if err == nil && p.Tenant == "" {
		err = tenancy.ErrNoTenant
	}
	if err != nil {
		if apierror.Classify(err).Kind == apierror.Internal {
			err = apierror.Wrap(apierror.Unauthenticated, err, "authentication")
		}
		return false, err
	}
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.tenant = p.Tenant
	}
	return p.Has(tenancy.ScopeOperator), nil
}

func (h healthChecker) report(ctx context.Context) healthReport {
	sh := h.store.Health(ctx)
	rep := healthReport{Components: map[string]componentHealth{
		componentStorageRead:  {sh.Read.Status, sh.Read.Message},
		componentStorageWrite: {sh.Write.Status, sh.Write.Message},
	}}
	if h.keys != nil {
		rep.Components[componentAuthKeys] = keysHealth(h.keys.KeyStatus())
	}
	if h.limits != nil {
		rep.Components[componentLimitsFile] = limitsHealth(h.limits.LastReload())
	}
	rep.Status = storage.StatusOK
	for name, c := range rep.Components {
		switch {
		case c.Status == storage.StatusOK:
		case c.Status == storage.StatusDown && (name == componentStorageRead || name == componentAuthKeys):
			rep.Status = storage.StatusDown // Luminate cannot serve
		case rep.Status == storage.StatusOK:
			rep.Status = storage.StatusDegraded
		}
	}
	return rep
}

func keysHealth(k tenancy.KeyStatus) componentHealth {
	switch {
	case k.Disabled:
		return componentHealth{storage.StatusDegraded, "authentication is disabled (--auth.disabled): every request is accepted without a token"}
	case k.Keys == 0:
		return componentHealth{storage.StatusDown, "no verification key loaded: every token is refused"}
	}
	return componentHealth{storage.StatusOK, fmt.Sprintf("%d verification key(s) loaded; algorithms %s", k.Keys, strings.Join(k.Algorithms, ", "))}
}

func limitsHealth(st tenancy.ReloadStatus) componentHealth {
	const layout = time.RFC3339
	switch {
	case st.File == "":
		return componentHealth{storage.StatusOK, "no overrides file: the default limits apply to every tenant"}
	case st.Err != nil:
		return componentHealth{storage.StatusDegraded, fmt.Sprintf("reload at %s failed: %v; the limits loaded at %s stay in force (fix the file; it is reloaded when it changes or on SIGHUP)",
			st.At.UTC().Format(layout), st.Err, st.Loaded.UTC().Format(layout))}
	}
	return componentHealth{storage.StatusOK, fmt.Sprintf("%s loaded at %s: overrides for %d tenant(s)", st.File, st.Loaded.UTC().Format(layout), st.Tenants)}
}
