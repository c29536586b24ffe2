package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/api"
	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// TestBodyBudget: with --http.max-body-bytes-in-flight at 1 MiB, tenant B's
// uploads stalled before their end hold at most half of it: B's next body
// is refused with 503, Retry-After and the flag's name, while tenant A's
// body of 400 KiB is read whole; once B's uploads end, their bytes are
// free again.
func TestBodyBudget(t *testing.T) {
	const budget = 1 << 20
	got := make(chan int, 8) // bytes a stalled upload had read
	route := api.Route{Path: "/upload", Methods: []string{http.MethodPost}, Scope: tenancy.ScopeWrite, Format: apierror.Native,
		Serve: func(r *http.Request, tn storage.Tenant) (any, error) {
			if r.Header.Get("X-Stall") != "" {
				buf := make([]byte, 300<<10)
				n, err := io.ReadFull(r.Body, buf)
				got <- n
				if err != nil {
					return nil, err
				}
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			return map[string]int{"bytes": len(b)}, nil
		}}
	e := newEnvWith(t, func(o *api.Options) { o.MaxBodyBytesInFlight = budget; o.Tenants = o.Storage.(api.TenantOpener) }, route)
	tokA, tokB := e.token("a", time.Hour, tenancy.ScopeWrite), e.token("b", time.Hour, tenancy.ScopeWrite)

	post := func(token string, body io.Reader, stall bool) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/upload", body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		if stall {
			req.Header.Set("X-Stall", "1")
		}
		resp, err := e.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	// One body over half the budget: refused, whoever else holds none.
	resp, body := post(tokB, bytes.NewReader(make([]byte, 600<<10)), false)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, body, "--"+api.BodyBudgetFlag)

	// B: one upload stalled after 300 KiB of 400.
	type stalled struct {
		w    *io.PipeWriter
		done chan string
	}
	stall := func() stalled {
		pr, pw := io.Pipe()
		s := stalled{w: pw, done: make(chan string, 1)}
		t.Cleanup(func() { _ = pw.CloseWithError(io.ErrUnexpectedEOF) })
		go func() {
			resp, body := post(tokB, pr, true)
			s.done <- resp.Status + " " + body
		}()
		go func() { _, _ = pw.Write(make([]byte, 300<<10)) }()
		require.Equal(t, 300<<10, <-got)
		return s
	}
	s1 := stall()
	// A reads 400 KiB, within its own half (the budget is taken in steps
	// of 64 KiB ahead of what was read).
	resp, body = post(tokA, bytes.NewReader(make([]byte, 400<<10)), false)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"bytes":409600`)
	// B's second body would take B past half.
	resp, body = post(tokB, bytes.NewReader(make([]byte, 300<<10)), false)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	require.Contains(t, body, "tenant b")

	// The stalled upload ends: its bytes come back.
	go func() { _, _ = s1.w.Write(make([]byte, 100<<10)); _ = s1.w.Close() }()
	require.True(t, strings.HasPrefix(<-s1.done, "200"))
	// (given back once the answer is written: the client may see the
	// answer a moment before)
	require.Eventually(t, func() bool {
		resp, _ := post(tokB, bytes.NewReader(make([]byte, 400<<10)), false)
		return resp.StatusCode == http.StatusOK
	}, 5*time.Second, 10*time.Millisecond, "tenant B's bytes given back")
}
