// Package tenancy identifies tenants: it verifies the JWTs clients present,
// turns them into a typed tenant ID and scopes, carries both in the request
// context, and holds per-tenant limits.
//
// It is not where data is filtered by tenant: storage views are scoped by
// the storage package, which takes an ID from here.
package tenancy

import (
	"context"
	"errors"
	"fmt"
)

// Label is the dimension under which every stored series carries its tenant.
// Storage injects it; clients may never send it.
const Label = "_tenant_id"

// ID is a verified tenant identifier. Its zero value is not a valid tenant.
type ID string

// ErrInvalidID is returned for tenant IDs outside [A-Za-z0-9_.-]{1,128}.
var ErrInvalidID = errors.New("invalid tenant id")

// MaxIDLength is the longest tenant ID accepted.
const MaxIDLength = 128

// ParseID validates s as a tenant ID.
func ParseID(s string) (ID, error) {
	if len(s) == 0 || len(s) > MaxIDLength {
		return "", fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidID, len(s), MaxIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return "", fmt.Errorf("%w: character %q at %d (allowed: A-Z a-z 0-9 _ . -)", ErrInvalidID, c, i)
		}
	}
	return ID(s), nil
}

// String returns the tenant ID as text.
func (id ID) String() string { return string(id) }

// Scope is a permission a token grants.
type Scope string

// The scopes Luminate knows. The first three are a tenant's: they reach
// only the data of the token's tenant. ScopeOperator is the process's: it
// reaches what every tenant shares (the server's own /metrics, which name
// every tenant, the detailed health report, the runtime profiles), and is
// granted to the people and scrapers who run Luminate, not to tenants.
const (
	ScopeWrite Scope = "metrics:write"
	ScopeRead  Scope = "metrics:read"
	ScopeAdmin Scope = "admin"
	// ScopeOperator is not implied by ScopeAdmin, and implies no other
	// scope: an operator token reads no tenant's data unless it is also
	// granted metrics:read.
	ScopeOperator Scope = "operator"
)

// Scopes lists the scopes Luminate knows, for validation and help texts.
func Scopes() []Scope { return []Scope{ScopeWrite, ScopeRead, ScopeAdmin, ScopeOperator} }

// Principal is what a verified request may do: its tenant and its scopes,
// and who it is (the token's "sub" claim, for audit lines; empty when the
// token has none).
type Principal struct {
	Tenant  ID
	Scopes  []Scope
	Subject string
}

// Has reports whether p was granted scope s. Admin implies every scope of
// its tenant, never ScopeOperator, which is the process's.
func (p Principal) Has(s Scope) bool {
	for _, g := range p.Scopes {
		if g == s || g == ScopeAdmin && s != ScopeOperator {
			return true
		}
	}
	return false
}

type ctxKey struct{}

// NewContext returns ctx carrying p. Only authentication middleware calls it.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// ErrNoTenant is returned when a context carries no verified tenant.
var ErrNoTenant = errors.New("no tenant in request context")

// FromContext returns the verified principal of ctx.
func FromContext(ctx context.Context) (Principal, error) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	if !ok || p.Tenant == "" {
		return Principal{}, ErrNoTenant
	}
	return p, nil
}
