package tenancy

import "fmt"

// Setting names a configurable limit, so that an error saying a request
// hit it can say which limit it was and how to raise it. Every limit error
// in Luminate is built from one (apierror.Limit, LimitError).
type Setting struct {
	// ID is the limit's stable identifier, for clients and metrics: the
	// per-tenant override key for per-tenant limits, the flag's name
	// without dashes for process-wide ones.
	ID string
	// Flag is the command-line flag that sets the limit, with its dashes.
	Flag string
	// Override is the per-tenant override key in the limits file; empty
	// for a process-wide limit.
	Override string
}

// PerTenant returns the Setting of a per-tenant limit: flag sets its
// default, key (also its ID) overrides it for a tenant.
func PerTenant(flag, key string) Setting { return Setting{ID: key, Flag: flag, Override: key} }

// Global returns the Setting of a process-wide limit set by flag.
func Global(flag string) Setting {
	id := flag
	for len(id) > 0 && id[0] == '-' {
		id = id[1:]
	}
	return Setting{ID: id, Flag: flag}
}

// Raise says how to raise the limit, for the end of an error message:
// "(raise --limits.query-rate or its per-tenant override query_rate)".
func (s Setting) Raise() string {
	if s.Override == "" {
		return fmt.Sprintf("(raise %s)", s.Flag)
	}
	return fmt.Sprintf("(raise %s or its per-tenant override %s)", s.Flag, s.Override)
}
