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
	// StartTimestamps has rate, increase, irate and resets use the start
	// timestamps stored with samples (Prometheus' use-start-timestamps).
	// Off by default, as in Prometheus 3, because it changes answers: a
	// Prometheus without it answers what Luminate answers without it.
	StartTimestamps bool

	// Bounds of every query's text and parse, and of its subqueries; see
	// bounds.go. Per-tenant limits (tenancy.TenantLimits) may lower the
	// length and subquery bounds, never raise them.
	MaxQueryLength        int // bytes of a query text, or of a request's match[] together
	MaxQueryDepth         int // of the syntax tree, brackets and chained operators
	MaxQueryTerms         int // names, numbers, strings, operators and brackets
	MaxMatchSelectors     int // match[] of one request
	MaxSubquerySteps      int // steps one subquery evaluates
	MaxSubqueryTotalSteps int // points all subqueries of a query feed into functions

	// RangeParallelism is the most parts a long range query is split into
	// in time and evaluated in parallel (split.go): 0 is one per core
	// (GOMAXPROCS), 1 never splits.
	RangeParallelism int
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
		MaxQueryLength:        256 << 10,
		MaxQueryDepth:         1000,
		MaxQueryTerms:         10_000,
		MaxMatchSelectors:     1000,
		MaxSubquerySteps:      1_000_000,
		MaxSubqueryTotalSteps: 1_000_000_000,
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
	f.BoolVar(&c.StartTimestamps, "query.use-start-timestamps", d.StartTimestamps, "Let rate, increase, irate and resets use the start timestamps stored with samples (Prometheus' experimental use-start-timestamps). Off by default because it changes answers from those of a Prometheus without it.")
	f.BoolVar(&c.DelayedNameRemoval, "query.delayed-name-removal", d.DelayedNameRemoval, "Remove __name__ at the end of evaluation rather than at each function (Prometheus' promql-delayed-name-removal).")
	f.IntVar(&c.RangeParallelism, "query.range-parallelism", d.RangeParallelism, "Most parts a range query of 3 h or more is split into in time and evaluated in parallel, with the answers of the whole query: 0 is one per core (GOMAXPROCS), 1 never splits.")
	const bad = " (400, errorType bad_data)"
	const tenant = " A per-tenant limit may lower it: "
	f.IntVar(&c.MaxQueryLength, "query.max-length", d.MaxQueryLength, "Maximum bytes of a PromQL query text, or of the match[] selectors of one request together"+bad+"."+tenant+"--limits.max-query-length.")
	f.IntVar(&c.MaxQueryDepth, "query.max-depth", d.MaxQueryDepth, "Maximum nesting depth of a PromQL query, counting brackets and chained operators"+bad+".")
	f.IntVar(&c.MaxQueryTerms, "query.max-terms", d.MaxQueryTerms, "Maximum terms (names, numbers, strings, operators, opening brackets) of a PromQL query or of the match[] selectors of one request"+bad+".")
	f.IntVar(&c.MaxMatchSelectors, "query.max-match-selectors", d.MaxMatchSelectors, "Maximum match[] selectors of one series or labels request"+bad+".")
	f.IntVar(&c.MaxSubquerySteps, "query.max-subquery-steps", d.MaxSubquerySteps, "Maximum steps one subquery may evaluate: (its range + the span of the evaluation it is part of) / its step"+bad+"."+tenant+"--limits.max-subquery-steps.")
	f.IntVar(&c.MaxSubqueryTotalSteps, "query.max-subquery-total-steps", d.MaxSubqueryTotalSteps, "Maximum points the subqueries of one query may feed into the functions over them: for each subquery the steps of the evaluation it is part of times range/step, so nested subqueries multiply"+bad+"."+tenant+"--limits.max-subquery-total-steps.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--query.timeout %s must be positive", c.Timeout))
	}
	if c.RangeParallelism < 0 {
		errs = append(errs, fmt.Errorf("--query.range-parallelism %d must not be negative", c.RangeParallelism))
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
	for _, b := range []struct {
		flag string
		v    int
	}{
		{"--query.max-length", c.MaxQueryLength}, {"--query.max-depth", c.MaxQueryDepth}, {"--query.max-terms", c.MaxQueryTerms},
		{"--query.max-match-selectors", c.MaxMatchSelectors}, {"--query.max-subquery-steps", c.MaxSubquerySteps},
		{"--query.max-subquery-total-steps", c.MaxSubqueryTotalSteps},
	} {
		if b.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %d must be positive", b.flag, b.v))
		}
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
