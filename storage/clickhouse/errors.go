package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	ch "github.com/ClickHouse/clickhouse-go/v2"

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
