package promql

import (
	"errors"
	"flag"
	"fmt"
	"regexp"
	"time"
)

// Config configures the Prometheus HTTP API and its PromQL engine.
type Config struct {
	// Timeout bounds one query (the engine's timeout); a request's own
	// timeout parameter may only shorten it.
	Timeout time.Duration
	// MaxSamples is the most samples one query may hold in memory at once
	// (the engine's MaxSamples, Prometheus' --query.max-samples).
	MaxSamples int
	// LookbackDelta is how far back an instant selector looks for a sample.
	LookbackDelta time.Duration
	// MaxSeries is the most series one query may load, for every tenant;
	// 0 leaves it to the per-tenant limit alone. The lower of the two wins.
	MaxSeries int
	// SubqueryStep is the step of a subquery written without one, e.g.
	// x[1h:] (Prometheus uses its evaluation interval).
	SubqueryStep time.Duration
	// CORSOrigin is a regular expression of the origins allowed to read
	// responses from a browser, anchored as in Prometheus' --web.cors.origin.
	CORSOrigin string

	// PromQL language features beyond Prometheus' defaults. All of them are
	// additive syntax except DelayedNameRemoval, which only keeps __name__
	// until the end of evaluation to avoid spurious label set collisions.
	// The upstream PromQL test suite expects all of them.
	ExperimentalFunctions bool
	FillModifiers         bool
	UnquotedUTF8Names     bool
	DelayedNameRemoval    bool
}

// DefaultConfig returns the defaults the flags use, which are Prometheus'
// where Prometheus has the setting.
func DefaultConfig() Config {
	return Config{
		Timeout:               2 * time.Minute,
		MaxSamples:            50_000_000,
		LookbackDelta:         5 * time.Minute,
		SubqueryStep:          time.Minute,
		CORSOrigin:            ".*",
		ExperimentalFunctions: true,
		FillModifiers:         true,
		UnquotedUTF8Names:     true,
		DelayedNameRemoval:    true,
	}
}

// RegisterFlags registers the --query.* flags on f.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	d := DefaultConfig()
	f.DurationVar(&c.Timeout, "query.timeout", d.Timeout, "Maximum time a query may take before it is aborted (503, errorType timeout).")
	f.IntVar(&c.MaxSamples, "query.max-samples", d.MaxSamples, "Maximum number of samples a single query can hold in memory at once (422, errorType execution).")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", d.LookbackDelta, "How far back an instant selector looks for the latest sample of a series.")
	f.IntVar(&c.MaxSeries, "query.max-series", d.MaxSeries, "Maximum number of series a single query may load, for every tenant; 0 leaves it to --limits.max-series-per-query.")
	f.DurationVar(&c.SubqueryStep, "query.default-subquery-step", d.SubqueryStep, "Step of a subquery written without one (x[1h:]).")
	f.StringVar(&c.CORSOrigin, "query.cors-origin", d.CORSOrigin, "Regular expression of the origins allowed to read query responses from a browser (CORS).")
	f.BoolVar(&c.ExperimentalFunctions, "query.experimental-functions", d.ExperimentalFunctions, "Allow PromQL's experimental functions (sort_by_label, limitk, info, ...).")
	f.BoolVar(&c.FillModifiers, "query.fill-modifiers", d.FillModifiers, "Allow the fill() modifiers of PromQL binary operators.")
	f.BoolVar(&c.UnquotedUTF8Names, "query.unquoted-utf8-names", d.UnquotedUTF8Names, "Allow Unicode letters and dots in unquoted metric and label names.")
	f.BoolVar(&c.DelayedNameRemoval, "query.delayed-name-removal", d.DelayedNameRemoval, "Remove __name__ at the end of evaluation rather than at each function (Prometheus' promql-delayed-name-removal).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--query.timeout %s must be positive", c.Timeout))
	}
	if c.MaxSamples <= 0 {
		errs = append(errs, fmt.Errorf("--query.max-samples %d must be positive", c.MaxSamples))
	}
	if c.LookbackDelta <= 0 {
		errs = append(errs, fmt.Errorf("--query.lookback-delta %s must be positive", c.LookbackDelta))
	}
	if c.MaxSeries < 0 {
		errs = append(errs, fmt.Errorf("--query.max-series %d is negative (0 means no global limit)", c.MaxSeries))
	}
	if c.SubqueryStep <= 0 {
		errs = append(errs, fmt.Errorf("--query.default-subquery-step %s must be positive", c.SubqueryStep))
	}
	if _, err := compileCORS(c.CORSOrigin); err != nil {
		errs = append(errs, fmt.Errorf("--query.cors-origin: %w", err))
	}
	return errors.Join(errs...)
}

// compileCORS anchors and compiles a CORS origin pattern; "" allows none.
func compileCORS(pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	return regexp.Compile("^(?s:" + pattern + ")$")
}
