package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/luminate-io/luminate/tenancy"
)

// Opening is a MetricsStore that is being opened in the background (a
// write-ahead log to replay, a database to connect to and migrate), so that
// the HTTP server can listen at once. Until the store is open every read
// and write fails with ErrUnavailable (503 with Retry-After), Ready and
// Health say what the store is doing; from then on every call goes to the
// store. Safe for concurrent use.
type Opening struct {
	status func() string
	cancel context.CancelFunc
	done   chan struct{} // closed once open returned

	mu     sync.RWMutex
	store  MetricsStore // set when open succeeded
	err    error        // set when open failed
	closed bool
}

// OpenInBackground calls open in a goroutine of its own and returns at
// once. status says what open is doing, for Ready and Health while it
// runs (nil: "opening"). open's context is cancelled by Close.
func OpenInBackground(open func(ctx context.Context) (MetricsStore, error), status func() string) *Opening {
	ctx, cancel := context.WithCancel(context.Background())
	o := &Opening{status: status, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		s, err := open(ctx)
		o.mu.Lock()
		defer o.mu.Unlock()
		switch {
		case err != nil:
			o.err = err
		case s == nil:
			o.err = errors.New("open returned no store")
		default:
			o.store = s
		}
	}()
	return o
}

// Done is closed once the store is open or failed to open (see Err).
func (o *Opening) Done() <-chan struct{} { return o.done }

// Err is why the store failed to open; nil while it opens and once open.
func (o *Opening) Err() error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.err
}

// current returns the open store, or the error every call gets until then.
func (o *Opening) current() (MetricsStore, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	switch {
	case o.closed:
		return nil, fmt.Errorf("%w: storage closed", ErrUnavailable)
	case o.store != nil:
		return o.store, nil
	case o.err != nil:
		return nil, fmt.Errorf("%w: storage failed to open: %w", ErrUnavailable, o.err)
	}
	status := "opening"
	if o.status != nil {
		status = o.status()
	}
	return nil, &StartingError{Status: status}
}

// StartingError is what every call on an Opening gets while the store
// opens. It wraps ErrUnavailable (503 with Retry-After). Status says how far
// opening got ("replaying WAL: 42% (segment 3/7, 1200000 samples)"): no
// paths, addresses or tenants, so it may be shown to anyone.
type StartingError struct{ Status string }

func (e *StartingError) Error() string { return ErrUnavailable.Error() + ": starting: " + e.Status }

// Unwrap returns ErrUnavailable.
func (e *StartingError) Unwrap() error { return ErrUnavailable }

// ForTenant returns the tenant's view of the store once it is open, and a
// view refusing every call with ErrUnavailable until then.
func (o *Opening) ForTenant(id tenancy.ID) TenantStore {
	s, err := o.current()
	if err != nil {
		return unavailableTenant{err}
	}
	return s.ForTenant(id)
}

// Ready returns the store's readiness once it is open, and an error saying
// how far opening got until then.
func (o *Opening) Ready(ctx context.Context) error {
	s, err := o.current()
	if err != nil {
		return err
	}
	return s.Ready(ctx)
}

// Health reports the store's health once it is open, and both paths down
// with how far opening got until then.
func (o *Opening) Health(ctx context.Context) Health {
	s, err := o.current()
	if err != nil {
		c := Check{Status: StatusDown, Message: err.Error()}
		return Health{Read: c, Write: c}
	}
	return s.Health(ctx)
}

// Close stops an open in progress, waits for it, and closes the store if
// it opened.
func (o *Opening) Close() error {
	o.cancel()
	<-o.done
	o.mu.Lock()
	s := o.store
	if o.closed {
		s = nil // closed already
	}
	o.closed = true
	o.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// unavailableTenant is a tenant's view of a store that is not open: every
// call fails with err.
type unavailableTenant struct{ err error }

func (u unavailableTenant) AppenderV2(context.Context) promstorage.AppenderV2 {
	return unavailableAppenderV2(u)
}

func (u unavailableTenant) Querier(int64, int64) (promstorage.Querier, error) { return nil, u.err }

func (u unavailableTenant) ChunkQuerier(int64, int64) (promstorage.ChunkQuerier, error) {
	return nil, u.err
}

func (u unavailableTenant) Cardinality(context.Context, CardinalityRequest) (Cardinality, error) {
	return Cardinality{}, u.err
}

func (u unavailableTenant) ExemplarQuerier(context.Context) (promstorage.ExemplarQuerier, error) {
	return nil, u.err
}

func (u unavailableTenant) Metadata(context.Context, string, int) (map[string]metadata.Metadata, error) {
	return nil, u.err
}

func (u unavailableTenant) DeleteSeries(context.Context, DeleteRequest) (DeleteResult, error) {
	return DeleteResult{}, u.err
}

func (u unavailableTenant) CleanTombstones(context.Context) error { return u.err }

// unavailableAppenderV2 refuses every sample and commit with err.
type unavailableAppenderV2 struct{ err error }

func (a unavailableAppenderV2) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	return 0, a.err
}

func (a unavailableAppenderV2) Commit() error   { return a.err }
func (a unavailableAppenderV2) Rollback() error { return nil }

var (
	_ MetricsStore           = (*Opening)(nil)
	_ promstorage.AppenderV2 = unavailableAppenderV2{}
)
