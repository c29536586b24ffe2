package remoteread

import (
	"errors"
	"flag"
	"fmt"
)

// Config configures the remote-read endpoint.
type Config struct {
	// SampleLimit is the most samples one query of a SAMPLES response may
	// return (Prometheus' --storage.remote.read-sample-limit); 0 means no
	// limit. Streamed responses are bounded by frame size instead.
	SampleLimit int
	// ConcurrentLimit is how many remote-read requests, of all tenants, run
	// at once; more wait for a slot until their context ends. 0 means no
	// limit.
	ConcurrentLimit int
	// MaxBytesInFrame is the size a streamed frame aims at; a frame can be
	// larger by up to one chunk (Prometheus'
	// --storage.remote.read-max-bytes-in-frame).
	MaxBytesInFrame int
	// MaxRequestBytes bounds a request, compressed and decompressed.
	MaxRequestBytes int
}

// DefaultConfig returns the defaults the flags use, Prometheus' own.
func DefaultConfig() Config {
	return Config{
		SampleLimit:     50_000_000,
		ConcurrentLimit: 10,
		MaxBytesInFrame: 1 << 20,
		MaxRequestBytes: 32 << 20,
	}
}

// RegisterFlags registers the --remote-read.* flags on f.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.IntVar(&c.SampleLimit, "remote-read.sample-limit", d.SampleLimit, "Maximum samples one query of a non-streamed remote-read response may return; 0 means no limit. Streamed responses are bounded by frame size.")
	f.IntVar(&c.ConcurrentLimit, "remote-read.concurrent-limit", d.ConcurrentLimit, "Remote-read requests that may run at once, over all tenants; more wait for a slot. 0 means no limit.")
	f.IntVar(&c.MaxBytesInFrame, "remote-read.max-bytes-in-frame", d.MaxBytesInFrame, "Size in bytes a frame of a streamed remote-read response aims at; a frame may exceed it by one chunk.")
	f.IntVar(&c.MaxRequestBytes, "remote-read.max-request-bytes", d.MaxRequestBytes, "Largest remote-read request accepted, compressed and decompressed, in bytes.")
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
	if c.MaxBytesInFrame <= 0 {
		errs = append(errs, fmt.Errorf("--remote-read.max-bytes-in-frame %d must be positive", c.MaxBytesInFrame))
	}
	if c.MaxRequestBytes <= 0 {
		errs = append(errs, fmt.Errorf("--remote-read.max-request-bytes %d must be positive", c.MaxRequestBytes))
	}
	return errors.Join(errs...)
}
