package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// ReadTimeoutFlag is the serve flag that sets Options.BodyReadTimeout;
// the error of a body that did not arrive in time names it.
const ReadTimeoutFlag = "http.read-timeout"

// DefaultBodyReadTimeout is the default of ReadTimeoutFlag: a remote
// write of the largest body --ingest.max-request-bytes admits takes well
// under a second on any network a sender should use, so one minute is
// never reached by a real sender, while a slow upload holds its
// connection, goroutine and buffer for at most that long.
const DefaultBodyReadTimeout = time.Minute

// withBodyDeadline gives every request that has a body timeout, from the
// moment it is routed, to deliver it: the connection's read deadline is
// set (http.Server's ReadHeaderTimeout bounds only the headers), and a
// Read past it fails with an error wrapping apierror.ErrRequestTimeout,
// which handlers answer 408 (the connection is closed after the answer).
//
// Only the body: once the body is read to its end the deadline is
// cleared (net/http clears it too when it starts reading the connection
// in the background, to notice a client that went away), so the handler
// may take as long as it needs to answer (a query, a streamed remote
// read). A deadline passing during that background read would cancel the
// request's context, which is why requests without a body (GETs) get no
// deadline at all: their background read starts before their handler
// does. For the same reason this is not http.Server.ReadTimeout, which
// stays on the connection for the whole request. Nor is a write deadline
// set: streamed responses take their time, bounded by their handlers.
func withBodyDeadline(timeout time.Duration, next http.Handler) http.Handler {
	if timeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			// A ResponseWriter without deadlines (a test recorder): the
			// body is the caller's.
			next.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, w: w, rc: rc, timeout: timeout}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody is a request body read under a deadline.
type deadlineBody struct {
	io.ReadCloser
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	done    bool // read to its end or timed out: the deadline is settled
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == nil || b.done {
		return n, err
	}
	b.done = true
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection can read no more: say so, so that net/http
		// closes it after the answer instead of waiting for another
		// request on it.
		b.w.Header().Set("Connection", "close")
		return n, fmt.Errorf("%w: the request body did not arrive within --%s=%s %s: %w",
			apierror.ErrRequestTimeout, ReadTimeoutFlag, b.timeout, tenancy.Global("--"+ReadTimeoutFlag).Raise(), err)
	}
	// io.EOF, or the client went away: no more body to wait for.
	_ = b.rc.SetReadDeadline(time.Time{})
	return n, err
}
