package api

import (
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// BodyBudgetFlag is the serve flag that sets Options.MaxBodyBytesInFlight;
// the error of a body refused for it names it.
const BodyBudgetFlag = "http.max-body-bytes-in-flight"

// DefaultBodyBudget is the default of BodyBudgetFlag: 25 bodies of the
// largest remote write (--ingest.max-request-bytes, 10 MiB) at once, or
// hundreds of the few hundred kilobytes Prometheus sends.
const DefaultBodyBudget = 256 << 20

// bodyStep is how much of the budget a body takes at a time as it
// arrives: one lock per step, not per Read.
const bodyStep = 64 << 10

// A request body is held in memory by its handler while it arrives (the
// write paths decode it whole), and a client can send all of a large body
// but its last byte, then wait: the read deadline (BodyReadTimeout) ends
// that only after a minute, and many such uploads at once would take any
// amount of memory. bodyBudget bounds the bytes of the bodies the data
// routes have read and not yet answered, all requests together, and one
// tenant to half of it whatever the others hold, so that its uploads
// never leave the others without. A read past it fails (503 with
// Retry-After, classified through apierror.ErrBodiesInFlight) and the
// request's bytes are given back when its answer is written.
type bodyBudget struct {
	max      int64
	mu       sync.Mutex
	used     int64
	byTenant map[tenancy.ID]int64
}

// newBodyBudget returns a budget of max bytes, nil (no bound) for max <= 0.
func newBodyBudget(max int64) *bodyBudget {
	if max <= 0 {
		return nil
	}
	return &bodyBudget{max: max, byTenant: map[tenancy.ID]int64{}}
}

// take reserves n more bytes for tenant id.
func (b *bodyBudget) take(id tenancy.ID, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	mine := b.byTenant[id]
	switch {
	case b.used+n > b.max:
		return fmt.Errorf("%w: request bodies of %d bytes are being received, over the limit of %d; retry later (raise --%s)",
			apierror.ErrBodiesInFlight, b.used, b.max, BodyBudgetFlag)
	case mine+n > b.max/2:
		return fmt.Errorf("%w: tenant %s's request bodies being received hold %d bytes, and one tenant may hold at most half of the limit of %d; retry later (raise --%s)",
			apierror.ErrBodiesInFlight, id, mine, b.max, BodyBudgetFlag)
	}
	b.used += n
	b.byTenant[id] = mine + n
	return nil
}

// give returns n bytes of tenant id.
func (b *bodyBudget) give(id tenancy.ID, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if left := b.byTenant[id] - n; left > 0 {
		b.byTenant[id] = left
	} else {
		delete(b.byTenant, id)
	}
}

// budgetBody is a request body that takes from its budget what it reads.
type budgetBody struct {
	io.ReadCloser
	b          *bodyBudget
	id         tenancy.ID
	read, held int64
	err        error // the budget's refusal, returned from then on
}

// body returns r's body counted against b for tenant id, and the function
// that gives its bytes back; body itself when b is nil.
func (b *bodyBudget) body(id tenancy.ID, body io.ReadCloser) (io.ReadCloser, func()) {
	if b == nil || body == nil || body == http.NoBody {
		return body, func() {}
	}
	bb := &budgetBody{ReadCloser: body, b: b, id: id}
	return bb, func() { b.give(id, bb.held) }
}

func (bb *budgetBody) Read(p []byte) (int, error) {
	if bb.err != nil {
		return 0, bb.err
	}
	n, err := bb.ReadCloser.Read(p)
	bb.read += int64(n)
	if bb.read > bb.held {
		step := max(int64(bodyStep), bb.read-bb.held)
		if terr := bb.b.take(bb.id, step); terr != nil {
			bb.err = terr
			return n, terr
		}
		bb.held += step
	}
	return n, err
}
