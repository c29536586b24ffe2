// Package apierror is the one place where Luminate's errors become HTTP
// status codes. Handlers in every package return plain Go errors, wrapping
// an *Error (via New/Wrap) where they know the kind; Status turns any error
// into its status code, kind and Retry-After, recognising the sentinel
// errors of storage, tenancy, context and the Prometheus storage layer.
//
// It also renders errors, once per wire format (Write with Native,
// Prometheus or Text): the router is its only caller, so handlers return
// errors and never write them.
//
// It is not where success bodies or protocol headers are written: those
// are the router's and the protocols'.
package apierror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Kind classifies an error by what the client should do about it.
type Kind int

// The kinds, in the native API's vocabulary.
const (
	Internal Kind = iota
	InvalidArgument
	Unauthenticated
	PermissionDenied
	NotFound
	TooLarge
	UnsupportedMediaType
	Execution // a valid query that failed while running (Prometheus' 422)
	RateLimited
	Unavailable
	Timeout
	Canceled
	// RequestTimeout is a request whose body did not arrive in time (408).
	RequestTimeout
	// MethodNotAllowed is a request with a method its path does not
	// serve (405).
	MethodNotAllowed
)

var kindInfo = map[Kind]struct {
	status int
	code   string // native API error code
	prom   string // Prometheus HTTP API errorType
}{
	Internal:             {http.StatusInternalServerError, "internal", "internal"},
	InvalidArgument:      {http.StatusBadRequest, "invalid_argument", "bad_data"},
	Unauthenticated:      {http.StatusUnauthorized, "unauthenticated", "unauthorized"},
	PermissionDenied:     {http.StatusForbidden, "permission_denied", "forbidden"},
	NotFound:             {http.StatusNotFound, "not_found", "not_found"},
	TooLarge:             {http.StatusRequestEntityTooLarge, "invalid_argument", "bad_data"},
	UnsupportedMediaType: {http.StatusUnsupportedMediaType, "invalid_argument", "bad_data"},
	Execution:            {http.StatusUnprocessableEntity, "invalid_argument", "execution"},
	RateLimited:          {http.StatusTooManyRequests, "rate_limited", "too_many_requests"},
	Unavailable:          {http.StatusServiceUnavailable, "unavailable", "unavailable"},
	Timeout:              {http.StatusServiceUnavailable, "unavailable", "timeout"},
	Canceled:             {http.StatusServiceUnavailable, "unavailable", "canceled"},
	RequestTimeout:       {http.StatusRequestTimeout, "invalid_argument", "bad_data"},
	MethodNotAllowed:     {http.StatusMethodNotAllowed, "invalid_argument", "bad_data"},
}

// ErrRequestTimeout is wrapped by the error a request body's Read returns
// once the server's body read deadline has passed. Classify maps it to
// RequestTimeout whatever a handler wrapped it in, since it says what
// went wrong with the request, not with its content.
var ErrRequestTimeout = errors.New("request body not received in time")

// ErrBodiesInFlight is wrapped by the error a request body's Read returns
// when the bodies being received hold the server's budget for them (the
// api package's --http.max-body-bytes-in-flight). Classify maps it to
// Unavailable, with Retry-After, whatever a handler wrapped it in: the
// request is fine, the server is full for now.
var ErrBodiesInFlight = errors.New("request bodies in flight over the limit")

// Status is the HTTP status code of kind k.
func (k Kind) Status() int { return kindInfo[k].status }

// Code is the native API error code of kind k.
func (k Kind) Code() string { return kindInfo[k].code }

// PromType is the Prometheus HTTP API errorType of kind k.
func (k Kind) PromType() string { return kindInfo[k].prom }

// Error is an error with a kind, an optional offending field and an
// optional Retry-After.
type Error struct {
	Kind       Kind
	Msg        string
	Field      string        // the request field at fault, if any
	RetryAfter time.Duration // for RateLimited and Unavailable
	// Limit is the stable ID of the limit the request hit
	// (tenancy.Setting.ID), if any.
	Limit string
	Err   error // the cause, if any
}

func (e *Error) Error() string {
	switch {
	case e.Msg != "" && e.Err != nil:
		return e.Msg + ": " + e.Err.Error()
	case e.Msg != "":
		return e.Msg
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Kind.Code()
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error of kind k with a formatted message.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of kind k around err, with a message.
func Wrap(k Kind, err error, msg string) *Error {
	return &Error{Kind: k, Msg: msg, Err: err}
}

// Field returns an InvalidArgument error naming the offending field.
func Field(field, format string, args ...any) *Error {
	return &Error{Kind: InvalidArgument, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Limit returns an error of kind k saying that a request went over the
// limit s: the formatted message, then how to raise s. It is the one way
// to build a limit error outside tenancy (whose LimitError carries the
// same ID), so every one names its setting the same way.
func Limit(k Kind, s tenancy.Setting, format string, args ...any) *Error {
	return &Error{Kind: k, Limit: s.ID, Msg: fmt.Sprintf(format, args...) + " " + s.Raise()}
}

// Info is what Classify reports about an error.
type Info struct {
	Kind       Kind
	Status     int
	Field      string
	RetryAfter time.Duration
	Limit      string // the ID of the limit hit, if any
}

// DefaultRetryAfter is suggested to clients when an error carries none.
const DefaultRetryAfter = 5 * time.Second

// Classify maps any error to its kind and HTTP status. It is the one
// mapping in Luminate; add new sentinel errors here, not in handlers.
func Classify(err error) Info {
	var e *Error
	var limit *tenancy.LimitError
	k := Internal
	var field, limitID string
	var retry time.Duration
	switch {
	case err == nil:
		return Info{Status: http.StatusOK}
	case errors.Is(err, ErrRequestTimeout):
		k = RequestTimeout
	case errors.Is(err, ErrBodiesInFlight):
		k = Unavailable
	case errors.As(err, &e):
		k, field, retry, limitID = e.Kind, e.Field, e.RetryAfter, e.Limit
	case errors.Is(err, context.DeadlineExceeded):
		k = Timeout
	case errors.Is(err, context.Canceled):
		k = Canceled
	case errors.Is(err, storage.ErrUnavailable):
		k = Unavailable
	case errors.Is(err, storage.ErrSeriesLimit):
		k, limitID = InvalidArgument, storage.SeriesLimitSetting().ID
	case errors.Is(err, storage.ErrTenantLabel):
		k = InvalidArgument
	case errors.Is(err, tenancy.ErrNoTenant), errors.Is(err, tenancy.ErrUnauthenticated):
		k = Unauthenticated
	case errors.Is(err, tenancy.ErrPermissionDenied):
		k = PermissionDenied
	case errors.As(err, &limit) && limit.TooLarge:
		k, limitID = TooLarge, limit.Limit // never fits: not retriable
	case errors.As(err, &limit):
		k, retry, limitID = RateLimited, limit.RetryAfter, limit.Limit
	case errors.Is(err, tenancy.ErrRateLimited):
		k = RateLimited
	case errors.Is(err, promstorage.ErrOutOfBounds), errors.Is(err, promstorage.ErrTooOldSample),
		errors.Is(err, promstorage.ErrOutOfOrderSample), errors.Is(err, promstorage.ErrDuplicateSampleForTimestamp):
		k = InvalidArgument
	}
	if retry == 0 && (k == RateLimited || k == Unavailable) {
		retry = DefaultRetryAfter
	}
	if limitID == "" && errors.As(err, &limit) {
		limitID = limit.Limit
	}
	return Info{Kind: k, Status: k.Status(), Field: field, RetryAfter: retry, Limit: limitID}
}

// SetRetryAfter sets the Retry-After header when info carries one.
func SetRetryAfter(w http.ResponseWriter, info Info) {
	if info.RetryAfter > 0 {
		secs := int((info.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
	}
}
