package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/storage"
)

// retryableCodes are ClickHouse exception codes that mean "not now": the
// server is overloaded, a replica or ZooKeeper is away, a timeout hit.
var retryableCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	164: true, // READONLY
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	252: true, // TOO_MANY_PARTS
	279: true, // ALL_CONNECTION_TRIES_FAILED
	285: true, // TOO_FEW_LIVE_REPLICAS
	286: true, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
	319: true, // UNKNOWN_STATUS_OF_INSERT
	425: true, // SYSTEM_ERROR
	999: true, // KEEPER_EXCEPTION
}

// isConnError reports whether err is a failure to reach the server or a
// broken connection rather than an answer from the server.
func isConnError(err error) bool {
	if err == nil {
		return false
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, ch.ErrAcquireConnTimeout) || errors.Is(err, net.ErrClosed)
}

// unavailable wraps err with storage.ErrUnavailable when it means
// ClickHouse cannot serve now (unreachable, overloaded, timed out), so the
// caller answers 503 and the sender retries. Other errors pass unchanged.
func unavailable(err error) error {
	if err == nil || errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	var ex *ch.Exception
	switch {
	case errors.As(err, &ex):
		if !retryableCodes[ex.Code] {
			return err
		}
	case errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// queryError is a failed ClickHouse statement as callers see it.
// ClickHouse answers a bad query with its own message quoting a fragment
// of the SQL, and driver errors name tables and addresses: none of that is
// for clients, so its text says only which statement failed and whether
// to retry. The cause is logged where the statement fails and kept in the
// chain for errors.Is and errors.As. It unwraps to an *apierror.Error of
// kind Unavailable (around storage.ErrUnavailable) or Internal, so every
// renderer gives it the same status and the same text.
type queryError struct {
	api   *apierror.Error
	cause error
}

func (e *queryError) Error() string   { return e.api.Error() }
func (e *queryError) Unwrap() []error { return []error{e.api, e.cause} }

// masked returns err, a failure of the ClickHouse statement op ("series
// query", "insert"), as a queryError: unavailable when ClickHouse cannot
// serve now (the caller retries), internal otherwise. The end of the
// caller's context stays that, without the driver's text.
func masked(op string, err error) error {
	var qe *queryError
	switch {
	case err == nil, errors.As(err, &qe):
		return err
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("clickhouse %s: %w", op, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("clickhouse %s: %w: %w", op, storage.ErrUnavailable, context.DeadlineExceeded)
	case errors.Is(unavailable(err), storage.ErrUnavailable):
		return &queryError{api: &apierror.Error{Kind: apierror.Unavailable, Msg: "clickhouse " + op + " failed", Err: storage.ErrUnavailable}, cause: err}
	}
	return &queryError{api: &apierror.Error{Kind: apierror.Internal, Msg: "clickhouse " + op + " failed (the server log has the details)"}, cause: err}
}

// readFailed logs err, a failure of the read query of kind kind, and
// returns it masked. Reads fail here once: an error already masked is
// returned as it is.
func (s *Store) readFailed(kind string, err error) error {
	var qe *queryError
	if err == nil || errors.As(err, &qe) {
		return err
	}
	out := masked(kind+" query", err)
	if !errors.Is(err, context.Canceled) {
		s.logger.Warn("clickhouse read failed", slog.String("query", kind), slog.Any("err", err))
	}
	return out
}
