package tenancy

import (
	"errors"
	"time"
)

// The kinds of error this package returns. apierror maps them to HTTP
// statuses (401, 403 and 429); callers test them with errors.Is and never
// inspect messages.
//
// They are plain errors here rather than *apierror.Error values because
// apierror imports tenancy (for ErrNoTenant and these), so tenancy cannot
// import apierror.
var (
	// ErrUnauthenticated: the request carries no valid token.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the token is valid but lacks a scope.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrRateLimited: a per-tenant limit refused the request for now.
	ErrRateLimited = errors.New("rate limited")
	// ErrRequestTooLarge: a per-tenant limit refuses the request whatever
	// the time, because the request alone is larger than the limit (a
	// write of more samples than the ingestion burst): retrying it cannot
	// succeed, it must be split or the limit raised.
	ErrRequestTooLarge = errors.New("request larger than a per-tenant limit")
)

// AuthError is why a token was refused. It wraps ErrUnauthenticated. Its
// message is short, fixed text and never contains the token.
type AuthError struct {
	// Reason is a short machine-readable cause, one of the AuthReason*
	// constants; it is the reason label of luminate_auth_failures_total.
	Reason string
	// Msg is the human-readable cause.
	Msg string
}

func (e *AuthError) Error() string { return "unauthenticated: " + e.Msg }

// Unwrap returns ErrUnauthenticated.
func (e *AuthError) Unwrap() error { return ErrUnauthenticated }

// LimitError is a refusal by a per-tenant limit. It wraps ErrRateLimited
// and says when to retry and which setting raises the limit; or, when
// TooLarge, it wraps ErrRequestTooLarge: the request can never pass.
type LimitError struct {
	Tenant ID
	// Limit is the per-tenant override key of the limit, e.g.
	// "ingestion_rate"; it is the limit label of luminate_rate_limited_total.
	Limit string
	// RetryAfter is when the request could succeed, or 0 if unknown.
	RetryAfter time.Duration
	// Msg names the limit, the tenant and the setting that raises it.
	Msg string
	// TooLarge means the request alone exceeds the limit: no wait makes
	// it fit (RetryAfter is 0), so it must not be answered as retriable.
	TooLarge bool
}

func (e *LimitError) Error() string { return e.Msg }

// Unwrap returns ErrRequestTooLarge when e.TooLarge, else ErrRateLimited.
func (e *LimitError) Unwrap() error {
	if e.TooLarge {
		return ErrRequestTooLarge
	}
	return ErrRateLimited
}
