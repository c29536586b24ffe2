package remoteread

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// slots are the remote-read requests that may run at once: a global gate
// of --remote-read.concurrent-limit slots, as Prometheus' util/gate, and
// for each tenant a share of them, so that one tenant's requests cannot
// hold every slot. A request waits first for its tenant's share, then for
// a global slot, for at most the slot timeout in all; waiting tenants hold
// their share, so the waiters of one tenant are bounded too. It is safe
// for concurrent use.
type slots struct {
	global    chan struct{} // nil: no global limit
	perTenant int           // 0: no per-tenant share
	timeout   time.Duration
	globalN   int

	mu      sync.Mutex
	tenants map[tenancy.ID]*tenantSlots // tenants that hold or wait for a slot
}

// tenantSlots is the share of one tenant.
type tenantSlots struct {
	sem   chan struct{}
	users int // requests holding or waiting for sem; guarded by slots.mu
}

func newSlots(cfg Config) *slots {
	s := &slots{perTenant: cfg.tenantSlots(), timeout: cfg.SlotTimeout, globalN: cfg.ConcurrentLimit, tenants: map[tenancy.ID]*tenantSlots{}}
	if cfg.ConcurrentLimit > 0 {
		s.global = make(chan struct{}, cfg.ConcurrentLimit)
	}
	return s
}

// acquire waits for a slot for a request of tenant id and returns the func
// that frees it (safe to call more than once). It fails when ctx ends or
// the slot timeout passes first: with a 429 when the tenant's share stayed
// full, a 503 when all slots did, both with Retry-After.
func (s *slots) acquire(ctx context.Context, id tenancy.ID) (release func(), err error) {
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	var ts *tenantSlots
	if s.perTenant > 0 {
		ts = s.join(id)
		if err := s.wait(ctx, timer.C, ts.sem); err != nil {
			s.leave(id, ts)
			if err == errSlotTimeout {
				err := apierror.Limit(apierror.RateLimited, tenancy.Global("--remote-read.tenant-concurrent-limit"),
					"tenant %s already holds its share of %d remote-read slots (by default half of --remote-read.concurrent-limit); none became free within %s", id, s.perTenant, s.timeout)
				err.RetryAfter = time.Second
				return nil, err
			}
			return nil, fmt.Errorf("wait for a slot of tenant %s's share (--remote-read.tenant-concurrent-limit=%d): %w", id, s.perTenant, err)
		}
	}
	if s.global != nil {
		if err := s.wait(ctx, timer.C, s.global); err != nil {
			if ts != nil {
				<-ts.sem
				s.leave(id, ts)
			}
			if err == errSlotTimeout {
				return nil, apierror.Limit(apierror.Unavailable, tenancy.Global("--remote-read.concurrent-limit"),
					"all %d remote-read slots stayed busy for %s", s.globalN, s.timeout)
			}
			return nil, fmt.Errorf("wait for a slot of --remote-read.concurrent-limit=%d: %w", s.globalN, err)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if s.global != nil {
				<-s.global
			}
			if ts != nil {
				<-ts.sem
				s.leave(id, ts)
			}
		})
	}, nil
}

// errSlotTimeout is what wait returns when the slot timeout passes.
var errSlotTimeout = errors.New("slot timeout")

// wait takes a place in sem, or returns ctx's error or errSlotTimeout.
func (s *slots) wait(ctx context.Context, timeout <-chan time.Time, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout:
		return errSlotTimeout
	}
}

func (s *slots) join(id tenancy.ID) *tenantSlots {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tenants[id]
	if ts == nil {
		ts = &tenantSlots{sem: make(chan struct{}, s.perTenant)}
		s.tenants[id] = ts
	}
	ts.users++
	return ts
}

func (s *slots) leave(id tenancy.ID, ts *tenantSlots) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ts.users--; ts.users == 0 {
		delete(s.tenants, id)
	}
}
