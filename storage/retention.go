package storage

import (
	"context"
	"maps"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/luminate-io/luminate/tenancy"
)

// RetentionPolicy is how long each tenant's samples are kept (issue 14,
// per-tenant retention). A retention of 0 keeps them forever. Both methods
// are safe for concurrent use and cheap: reads call Retention once per
// querier. *tenancy.Limits is one, from the overrides file's retention key.
type RetentionPolicy interface {
	// Retention returns tenant id's retention.
	Retention(id tenancy.ID) time.Duration
	// Retentions returns the retention of every tenant without an
	// override and, by tenant, those with one.
	Retentions() (defaults time.Duration, overrides map[tenancy.ID]time.Duration)
}

// FixedRetention is the RetentionPolicy of one retention for every tenant
// (a backend's global Retention when it is given no policy).
type FixedRetention time.Duration

// Retention returns r.
func (r FixedRetention) Retention(tenancy.ID) time.Duration { return time.Duration(r) }

// Retentions returns r and no override.
func (r FixedRetention) Retentions() (time.Duration, map[tenancy.ID]time.Duration) {
	return time.Duration(r), nil
}

// PolicyOr is p, or FixedRetention(fixed) when p is nil: a backend's
// policy from its configuration.
func PolicyOr(p RetentionPolicy, fixed time.Duration) RetentionPolicy {
	if p != nil {
		return p
	}
	return FixedRetention(fixed)
}

// RetentionCutoff is the oldest timestamp (milliseconds) a tenant with
// retention r may read and keep at now: math.MinInt64 when r is 0.
func RetentionCutoff(r time.Duration, now time.Time) int64 {
	if r <= 0 {
		return math.MinInt64
	}
	return now.Add(-r).UnixMilli()
}

// LongestRetention returns the longest retention p has in force (0:
// forever, when any tenant keeps its samples forever), and whether any
// tenant's retention is shorter than it.
func LongestRetention(p RetentionPolicy) (longest time.Duration, shorter bool) {
	def, over := p.Retentions()
	longest = def
	for _, r := range over {
		if longest > 0 && (r <= 0 || r > longest) {
			longest = r
		}
	}
	if def != longest {
		return longest, true
	}
	for _, r := range over {
		if r != longest {
			return longest, true
		}
	}
	return longest, false
}

// SameRetentions reports whether two results of Retentions are equal.
func SameRetentions(d1 time.Duration, o1 map[tenancy.ID]time.Duration, d2 time.Duration, o2 map[tenancy.ID]time.Duration) bool {
	return d1 == d2 && maps.Equal(o1, o2)
}

// RetainedExemplars returns q with every query clamped to start at cutoff
// (milliseconds): a tenant's exemplars past its retention are not read.
func RetainedExemplars(q promstorage.ExemplarQuerier, cutoff int64) promstorage.ExemplarQuerier {
	if cutoff == math.MinInt64 {
		return q
	}
	return retainedExemplars{q, cutoff}
}

type retainedExemplars struct {
	q      promstorage.ExemplarQuerier
	cutoff int64
}

func (r retainedExemplars) Select(start, end int64, ms ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	start = max(start, r.cutoff)
	if start > end {
		return []exemplar.QueryResult{}, nil
	}
	return r.q.Select(start, end, ms...)
}

// RetainedChunks returns q with every chunk cut at cutoff (milliseconds):
// chunks that end before it are left out, and one that straddles it is
// re-encoded from its first sample at cutoff, so that remote read never
// hands out a sample past the tenant's retention inside a chunk.
func RetainedChunks(q promstorage.ChunkQuerier, cutoff int64) promstorage.ChunkQuerier {
	if cutoff == math.MinInt64 {
		return q
	}
	return retainedChunkQuerier{q, cutoff}
}

type retainedChunkQuerier struct {
	promstorage.ChunkQuerier
	cutoff int64
}

func (q retainedChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.ChunkSeriesSet {
	return retainedChunkSet{q.ChunkQuerier.Select(ctx, sortSeries, hints, ms...), q.cutoff}
}

type retainedChunkSet struct {
	promstorage.ChunkSeriesSet
	cutoff int64
}

func (s retainedChunkSet) At() promstorage.ChunkSeries {
	return retainedChunkSeries{s.ChunkSeriesSet.At(), s.cutoff}
}

type retainedChunkSeries struct {
	promstorage.ChunkSeries
	cutoff int64
}

func (s retainedChunkSeries) Iterator(it chunks.Iterator) chunks.Iterator {
	in := s.ChunkSeries.Iterator(it)
	var out []chunks.Meta
	for in.Next() {
		m := in.At()
		switch {
		case m.MaxTime < s.cutoff:
			continue
		case m.MinTime >= s.cutoff:
			out = append(out, m)
			continue
		}
		cut := promstorage.NewSeriesToChunkEncoder(chunkFrom{s.Labels(), m.Chunk, s.cutoff}).Iterator(nil)
		for cut.Next() {
			out = append(out, cut.At())
		}
		if err := cut.Err(); err != nil {
			return ErrChunkIterator(err)
		}
	}
	if err := in.Err(); err != nil {
		return ErrChunkIterator(err)
	}
	return promstorage.NewListChunkSeriesIterator(out...)
}

// chunkFrom is the samples of one chunk from cutoff on, as a series.
type chunkFrom struct {
	lset   labels.Labels
	chk    chunkenc.Chunk
	cutoff int64
}

func (c chunkFrom) Labels() labels.Labels { return c.lset }

func (c chunkFrom) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &fromIterator{Iterator: c.chk.Iterator(nil), cutoff: c.cutoff}
}

// fromIterator starts its iterator at the first sample at or after cutoff.
type fromIterator struct {
	chunkenc.Iterator
	cutoff  int64
	started bool
}

func (it *fromIterator) Next() chunkenc.ValueType {
	if !it.started {
		it.started = true
		return it.Iterator.Seek(it.cutoff)
	}
	return it.Iterator.Next()
}

func (it *fromIterator) Seek(t int64) chunkenc.ValueType {
	it.started = true
	return it.Iterator.Seek(max(t, it.cutoff))
}
