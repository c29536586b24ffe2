package remoteread

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures the remote-read endpoint.
type Config struct {
	// SampleLimit is the most samples one query of a SAMPLES response may
	// return (Prometheus' --storage.remote.read-sample-limit); 0 means no
	// limit. Streamed responses are bounded by frame size instead.
	SampleLimit int
	// ConcurrentLimit is how many remote-read requests, of all tenants, run
	// at once; more wait for a slot for at most SlotTimeout. 0 means no
	// limit.
	ConcurrentLimit int
	// MaxBytesInFrame is the size a streamed frame aims at; a frame can be
	// larger by up to one chunk (Prometheus'
	// --storage.remote.read-max-bytes-in-frame).
	MaxBytesInFrame int
	// MaxRequestBytes bounds a request, compressed and decompressed.
	MaxRequestBytes int

	// The bounds of one request as a whole; the tenant's
	// max_series_per_query and max_samples_per_query (tenancy.Limits)
	// bound the series and samples of all its queries together.

	// MaxQueriesPerRequest bounds the queries of one request.
	MaxQueriesPerRequest int
	// MaxMatchersPerRequest bounds the label matchers of all the queries
	// of one request together.
	MaxMatchersPerRequest int
	// MaxResponseBytes bounds a response before compression: the
	// marshalled ReadResponse of a SAMPLES response, which is built in
	// memory, or the frames of a streamed one.
	MaxResponseBytes int
	// BodyTimeout is how long the client has to send the whole request
	// body; it is read before the request waits for a slot.
	BodyTimeout time.Duration
	// TenantConcurrentLimit is how many of the ConcurrentLimit slots one
	// tenant's requests may hold or wait for at once; 0 means half of
	// ConcurrentLimit, at least 1.
	TenantConcurrentLimit int
	// SlotTimeout is how long a request waits for a slot before it is
	// refused with Retry-After.
	SlotTimeout time.Duration
	// Timeout bounds how long a request holds its slot: reading the store
	// and writing the response, to a client however slow.
	Timeout time.Duration
}

// DefaultConfig returns the defaults the flags use, Prometheus' own where
// Prometheus has the setting.
func DefaultConfig() Config {
	return Config{
		SampleLimit:           50_000_000,
		ConcurrentLimit:       10,
		MaxBytesInFrame:       1 << 20,
		MaxRequestBytes:       32 << 20,
		MaxQueriesPerRequest:  1_000,
		MaxMatchersPerRequest: 10_000,
		MaxResponseBytes:      256 << 20,
		BodyTimeout:           30 * time.Second,
		SlotTimeout:           30 * time.Second,
		Timeout:               2 * time.Minute,
	}
}

// RegisterFlags registers the --remote-read.* flags on f.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.IntVar(&c.SampleLimit, "remote-read.sample-limit", d.SampleLimit, "Maximum samples one query of a non-streamed remote-read response may return; 0 means no limit. Streamed responses are bounded by frame size.")
	f.IntVar(&c.ConcurrentLimit, "remote-read.concurrent-limit", d.ConcurrentLimit, "Remote-read requests that may run at once, over all tenants; more wait for a slot (see --remote-read.slot-timeout). 0 means no limit.")
	f.IntVar(&c.MaxBytesInFrame, "remote-read.max-bytes-in-frame", d.MaxBytesInFrame, "Size in bytes a frame of a streamed remote-read response aims at; a frame may exceed it by one chunk.")
	f.IntVar(&c.MaxRequestBytes, "remote-read.max-request-bytes", d.MaxRequestBytes, "Largest remote-read request accepted, compressed and decompressed, in bytes.")
	f.IntVar(&c.MaxQueriesPerRequest, "remote-read.max-queries-per-request", d.MaxQueriesPerRequest, "Queries one remote-read request may hold; more are refused with 413. The series and samples of all of them together count against the tenant's max_series_per_query and max_samples_per_query.")
	f.IntVar(&c.MaxMatchersPerRequest, "remote-read.max-matchers-per-request", d.MaxMatchersPerRequest, "Label matchers all the queries of one remote-read request may hold together; more are refused with 413.")
	f.IntVar(&c.MaxResponseBytes, "remote-read.max-response-bytes", d.MaxResponseBytes, "Largest remote-read response, in bytes before compression, over all its queries: a non-streamed response (held in memory while it is built) beyond it is refused with 422, a streamed one is cut off.")
	f.DurationVar(&c.BodyTimeout, "remote-read.body-timeout", d.BodyTimeout, "Time a client has to send the whole remote-read request body, at most --http.read-timeout; a body that is slower is refused with 400. The body is read before the request waits for a slot.")
	f.IntVar(&c.TenantConcurrentLimit, "remote-read.tenant-concurrent-limit", d.TenantConcurrentLimit, "Slots of --remote-read.concurrent-limit the requests of one tenant may hold or wait for at once; 0 means half of them, at least 1.")
	f.DurationVar(&c.Timeout, "remote-read.timeout", d.Timeout, "Longest a remote-read request may hold its slot, reading the store and writing the response however slowly the client reads it; beyond it the request fails (503, or a cut-off response).")
	f.DurationVar(&c.SlotTimeout, "remote-read.slot-timeout", d.SlotTimeout, "Longest a remote-read request waits for a slot of --remote-read.concurrent-limit or of its tenant's share before it is refused (503, or 429 for the tenant's share) with Retry-After.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.SampleLimit < 0 {
		errs = append(errs, fmt.Errorf("--remote-read.sample-limit %d is negative (0 means no limit)", c.SampleLimit))
	}
	if c.ConcurrentLimit < 0 {
		errs = append(errs, fmt.Errorf("--remote-read.concurrent-limit %d is negative (0 means no limit)", c.ConcurrentLimit))
	}
	if c.TenantConcurrentLimit < 0 {
		errs = append(errs, fmt.Errorf("--remote-read.tenant-concurrent-limit %d is negative (0 means half of --remote-read.concurrent-limit)", c.TenantConcurrentLimit))
	}
	for _, p := range []struct {
		name string
		v    int
	}{
		{"max-bytes-in-frame", c.MaxBytesInFrame},
		{"max-request-bytes", c.MaxRequestBytes},
		{"max-queries-per-request", c.MaxQueriesPerRequest},
		{"max-matchers-per-request", c.MaxMatchersPerRequest},
		{"max-response-bytes", c.MaxResponseBytes},
	} {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("--remote-read.%s %d must be positive", p.name, p.v))
		}
	}
	for _, p := range []struct {
		name string
		v    time.Duration
	}{
		{"body-timeout", c.BodyTimeout},
		{"slot-timeout", c.SlotTimeout},
		{"timeout", c.Timeout},
	} {
		if p.v <= 0 {
			errs = append(errs, fmt.Errorf("--remote-read.%s %s must be positive", p.name, p.v))
		}
	}
	return errors.Join(errs...)
}

// tenantSlots is the share of the slots one tenant may hold or wait for;
// 0 means no limit.
func (c *Config) tenantSlots() int {
	switch {
	case c.TenantConcurrentLimit > 0:
		return c.TenantConcurrentLimit
	case c.ConcurrentLimit > 0:
		return max(1, c.ConcurrentLimit/2)
	}
	return 0
}
