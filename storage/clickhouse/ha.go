package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/luminate-io/luminate/tenancy"
)

// The HA election table (migration 8):
//
//	ha_elections (tenant, cluster, term, replica, elected_at, received_at)
//	             ReplacingMergeTree(received_at), ORDER BY (tenant, cluster, term, replica, elected_at)
//
// Each row is a proposal or a record of the replica replica of HA cluster
// cluster for election term term: a pod proposing a replica for the next
// term inserts (term, replica, now, now); a pod receiving the elected
// replica inserts (term, replica, its elected_at, now) every
// --ha.update-timeout. Rows are only added, so that pods never need a
// compare-and-set ClickHouse does not have; the election in force is a
// deterministic rule over them that every pod computes alike:
//
//   - the latest term is the one in force;
//   - of its candidates, the earliest proposal (min elected_at, then the
//     replica name) wins;
//   - the winner was last received at the max received_at of its rows.
//
// A pod proposes, then reads back (the insert is synchronous: on one
// server, and with insert_distributed_sync on a cluster, its row is
// visible once it returns) and takes what the rule says, its own
// proposal or another's. Merges keep one row per key with the latest
// received_at: min elected_at per candidate and max received_at per term
// are what they were before the merge, so merges never change the
// outcome. One row per (cluster, term, candidate) survives merges: some
// bytes per fail-over.
//
// The race: two pods proposing the same term at the same moment (each
// reading the term before, neither seeing the other's proposal yet) may
// each first read its own as the winner, until its next read, at most
// --ha.update-timeout later, shows the earliest. With an HA pair both
// propose the same replica (the only other one), so they agree at once.
// Otherwise, and when the old replica comes back at the moment another
// pod fails over, two replicas are stored for up to one update timeout:
// duplicate samples, never a gap. On a replicated cluster, a read on a
// replica that has not fetched a row yet widens that window by the
// replication lag.
const haTable = "ha_elections"

// haDDL is migration 8: the election table, and the Distributed table
// over it in cluster mode, sharded by tenant and cluster so that one
// cluster's rows are on one shard.
func (s schema) haDDL() []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(haTable)), s.onClusterClause())
	b.WriteString("  tenant String,\n")
	b.WriteString("  cluster String,\n")
	b.WriteString("  term UInt64,\n")
	b.WriteString("  replica String,\n")
	b.WriteString("  elected_at UInt64,\n") // ms, the proposing pod's clock
	b.WriteString("  received_at UInt64\n") // ms
	fmt.Fprintf(&b, ") ENGINE = %s\n", s.auxEngine(haTable, "received_at"))
	b.WriteString("ORDER BY (tenant, cluster, term, replica, elected_at)\n")
	b.WriteString("SETTINGS index_granularity = 256")
	stmts := []string{b.String()}
	if s.cluster != "" {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(tenant, cluster))",
			s.table(haTable), s.onClusterClause(), s.table(s.storageTable(haTable)),
			quoteIdent(s.cluster), quoteIdent(s.db), quoteIdent(s.storageTable(haTable))))
	}
	return stmts
}

// HAStore is the tenancy.HAStore of pods sharing one ClickHouse: the
// elections in its ha_elections table. Safe for concurrent use.
type HAStore struct{ s *Store }

var _ tenancy.HAStore = (*HAStore)(nil)

// HAStore returns the HA elections of s.
func (s *Store) HAStore() *HAStore { return &HAStore{s} }

// Get returns the election in force for (id, cluster).
func (h *HAStore) Get(ctx context.Context, id tenancy.ID, cluster string) (tenancy.HAElection, bool, error) {
	s := h.s
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	q := fmt.Sprintf("SELECT term, replica, min(elected_at) AS elected, max(received_at) AS received FROM %s "+
		"WHERE tenant = %s AND cluster = %s GROUP BY term, replica ORDER BY term DESC, elected, replica LIMIT 1",
		s.schema.table(haTable), quote(string(id)), quote(cluster))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return tenancy.HAElection{}, false, unavailable(fmt.Errorf("read HA election: %w", err))
	}
	defer rows.Close()
	var e tenancy.HAElection
	var elected, received uint64
	ok := rows.Next()
	if ok {
		if err := rows.Scan(&e.Term, &e.Replica, &elected, &received); err != nil {
			return tenancy.HAElection{}, false, fmt.Errorf("read HA election: %w", err)
		}
		e.ElectedAt, e.ReceivedAt = time.UnixMilli(int64(elected)), time.UnixMilli(int64(received))
	}
	if err := rows.Err(); err != nil {
		return tenancy.HAElection{}, false, unavailable(fmt.Errorf("read HA election: %w", err))
	}
	return e, ok, nil
}

// Elect proposes replica for term, then reads back the election in force.
func (h *HAStore) Elect(ctx context.Context, id tenancy.ID, cluster string, term uint64, replica string, now time.Time) (tenancy.HAElection, error) {
	ms := uint64(now.UnixMilli())
	if err := h.insert(ctx, id, cluster, term, replica, ms, ms); err != nil {
		return tenancy.HAElection{}, fmt.Errorf("propose HA replica: %w", err)
	}
	e, ok, err := h.Get(ctx, id, cluster)
	if err == nil && !ok {
		err = fmt.Errorf("HA proposal for term %d of cluster %q not read back", term, cluster)
	}
	return e, err
}

// Seen records e's replica as received at now.
func (h *HAStore) Seen(ctx context.Context, id tenancy.ID, cluster string, e tenancy.HAElection, now time.Time) error {
	if err := h.insert(ctx, id, cluster, e.Term, e.Replica, uint64(e.ElectedAt.UnixMilli()), uint64(now.UnixMilli())); err != nil {
		return fmt.Errorf("record HA replica: %w", err)
	}
	return nil
}

func (h *HAStore) insert(ctx context.Context, id tenancy.ID, cluster string, term uint64, replica string, elected, received uint64) error {
	s := h.s
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	b, err := s.conn.PrepareBatch(s.insertContext(ctx), "INSERT INTO "+s.schema.table(haTable)+" (tenant, cluster, term, replica, elected_at, received_at)")
	if err != nil {
		return unavailable(err)
	}
	if err := b.Append(string(id), cluster, term, replica, elected, received); err != nil {
		_ = b.Abort()
		return err
	}
	if err := b.Send(); err != nil {
		return unavailable(err)
	}
	s.metrics.insertedRows.WithLabelValues(haTable).Inc()
	return nil
}
