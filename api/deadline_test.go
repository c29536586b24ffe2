package api_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/native"
	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// bodyTimeout is the body read deadline of these tests: short, so that
// they are fast, and long enough for a busy machine to read a whole body.
const bodyTimeout = 500 * time.Millisecond

// newDeadlineServer serves the router, with a body read deadline of
// bodyTimeout, on a real loopback http.Server configured as serve does.
func newDeadlineServer(t *testing.T) (*env, string) {
	t.Helper()
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A handler that takes longer than the body deadline once it has
		// the body: it must not be cut off.
		if _, err := io.ReadAll(r.Body); err != nil {
			apierror.Write(w, apierror.Native, err, "")
			return
		}
		select {
		case <-time.After(2 * bodyTimeout):
		case <-r.Context().Done():
			apierror.Write(w, apierror.Native, fmt.Errorf("handler: %w", r.Context().Err()), "")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	var handler http.Handler
	e := newEnvWith(t, func(o *api.Options) {
		reg := prometheus.NewRegistry()
		limits, err := tenancy.NewLimits(tenancy.DefaultLimitsConfig(), nil, nil)
		require.NoError(t, err)
		o.BodyReadTimeout = bodyTimeout
		o.Tenants = o.Storage.(storage.MetricsStore)
		o.Routes = []api.Route{
			{Path: "/slow", Public: true, Handler: slow},
			{Path: "/api/v1/metrics", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, Format: apierror.Native,
				Serve: native.NewWrite(remotewrite.NewIngester(remotewrite.DefaultConfig(), limits, nil, reg), nil).Serve},
		}
		h, err := api.NewRouter(*o, slog.New(slog.DiscardHandler), reg)
		require.NoError(t, err)
		handler = h
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e, ln.Addr().String()
}

// TestSlowBodyCutOff: a client that sends its headers and then its body
// too slowly, all at once late or a byte at a time, is answered 408 and
// its connection closed once the body read deadline has passed, not when
// the client pleases. Before the deadline, http.Server bounded only the
// headers (ReadHeaderTimeout), and a slow body held its connection,
// goroutine and buffer for as long as the client liked.
func TestSlowBodyCutOff(t *testing.T) {
	e, addr := newDeadlineServer(t)
	writer := e.token("acme", time.Hour, tenancy.ScopeWrite)
	for _, tc := range []struct {
		name, path, token string
		trickle           bool // a byte every 50ms instead of nothing
	}{
		{"stalled", "/slow", "", false},
		{"trickling", "/slow", "", true},
		{"native write stalled", "/api/v1/metrics", writer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer conn.Close()
			head := "POST " + tc.path + " HTTP/1.1\r\nHost: luminate\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
			if tc.token != "" {
				head += "Authorization: Bearer " + tc.token + "\r\n"
			}
			start := time.Now()
			_, err = io.WriteString(conn, head+"\r\n{\"metrics\":[")
			require.NoError(t, err)
			stop := make(chan struct{})
			defer close(stop)
			if tc.trickle {
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond):
							if _, err := conn.Write([]byte(" ")); err != nil {
								return
							}
						}
					}
				}()
			}
			// The test's own bound: far above the deadline, far below the
			// minute a client could otherwise hold the connection.
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err, "the server answers before the client finishes")
			elapsed := time.Since(start)
			body, _ := io.ReadAll(resp.Body)
			require.Equal(t, http.StatusRequestTimeout, resp.StatusCode, string(body))
			require.GreaterOrEqual(t, elapsed, bodyTimeout)
			require.Less(t, elapsed, bodyTimeout+5*time.Second)
			require.Contains(t, string(body), "--"+api.ReadTimeoutFlag, "the error names the setting that raises it")
			require.True(t, resp.Close, "the connection is closed after the answer")
		})
	}
}

// TestBodyDeadlineOnlyBoundsTheBody: a request whose body arrives in time
// may take longer than the deadline to be answered, and so may a request
// without a body (a long query): the deadline is the body's, not the
// request's, and must not cancel the handler's context.
func TestBodyDeadlineOnlyBoundsTheBody(t *testing.T) {
	_, addr := newDeadlineServer(t)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader(`{"x":1}`)
			}
			req, err := http.NewRequest(method, "http://"+addr+"/slow", body)
			require.NoError(t, err)
			start := time.Now()
			resp, err := client.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNoContent, resp.StatusCode, string(b))
			require.GreaterOrEqual(t, time.Since(start), 2*bodyTimeout)
		})
	}
	// And the kept-alive connection serves the next request normally.
	resp, err := client.Post("http://"+addr+"/slow", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}
