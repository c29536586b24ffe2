package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/luminate-io/luminate/tenancy"
)

// The pods table (migration 9) is how the Luminate pods on one ClickHouse
// find each other and divide each tenant's limits (tenancy/cluster.go,
// docs/operations.md "Limits across pods"):
//
//	pods (pod, tenant, ingest, requests, queries, concurrent, at, seen)
//	     ReplacingMergeTree(at), PARTITION BY toYYYYMMDD(seen), ORDER BY (pod, tenant)
//
// Every heartbeat (about a second) each pod inserts one row per tenant it
// serves, its demand of the last interval, and one row with tenant ""
// saying it is alive; at is the pod's clock (ms), the version the replace
// keeps, seen the server's clock, what liveness is judged by (so pods'
// clocks need not agree). Rows are tiny and merge into one per (pod,
// tenant) and day; days before yesterday are dropped. In cluster mode it
// is a Distributed table over pods_local, sharded by pod.
const podsTable = "pods"

// podsDDL is migration 9: the pods table.
func (s schema) podsDDL() []string {
	var b []byte
	b = fmt.Appendf(b, "CREATE TABLE IF NOT EXISTS %s%s (\n", s.table(s.storageTable(podsTable)), s.onClusterClause())
	b = append(b, "  pod String,\n  tenant String,\n  ingest Float64,\n  requests Float64,\n  queries Float64,\n  concurrent Float64,\n  at Int64,\n  seen DateTime DEFAULT now()\n"...)
	b = fmt.Appendf(b, ") ENGINE = %s\n", s.auxEngine(podsTable, "at"))
	b = append(b, "PARTITION BY toYYYYMMDD(seen)\nORDER BY (pod, tenant)\nSETTINGS index_granularity = 1024"...)
	stmts := []string{string(b)}
	if s.cluster != "" {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(pod))",
			s.table(podsTable), s.onClusterClause(), s.table(s.storageTable(podsTable)),
			quoteIdent(s.cluster), quoteIdent(s.db), quoteIdent(s.storageTable(podsTable))))
	}
	return stmts
}

// Pods is the tenancy.ClusterState of the pods sharing one ClickHouse:
// the pods table, through a connection of its own (the heartbeat must not
// queue behind inserts). The table is created by the store's migrations
// (New); until it exists Exchange fails and the pods fall back as
// tenancy documents. Safe for concurrent use.
type Pods struct {
	conn   driver.Conn
	opts   *ch.Options
	schema schema // db and cluster only
	logger *slog.Logger

	mu          sync.Mutex
	lastCleanup time.Time
}

var _ tenancy.ClusterState = (*Pods)(nil)

// NewPods connects to the ClickHouse of cfg for the pods' heartbeats. It
// does not wait for the server: Exchange reports it unreachable.
func NewPods(cfg Config, logger *slog.Logger) (*Pods, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts, err := ch.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse storage.clickhouse.dsn: %w", err)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 2*time.Second {
		opts.DialTimeout = 2 * time.Second
	}
	opts.MaxOpenConns, opts.MaxIdleConns = 2, 2
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse for the pods' heartbeats: %w", err)
	}
	return &Pods{conn: conn, opts: opts, schema: schema{db: cfg.Database, cluster: cfg.Cluster}, logger: logger}, nil
}

// Close closes the connection.
func (p *Pods) Close() error { return p.conn.Close() }

// Exchange inserts self's heartbeat and reads the latest row of every
// (pod, tenant) the server saw within maxAge (rounded up to seconds).
func (p *Pods) Exchange(ctx context.Context, self tenancy.PodReport, maxAge time.Duration) ([]tenancy.PodReport, error) {
	b, err := p.conn.PrepareBatch(ctx, "INSERT INTO "+p.schema.table(podsTable)+" (pod, tenant, ingest, requests, queries, concurrent, at)")
	if err != nil {
		return nil, fmt.Errorf("publish heartbeat: %w", err)
	}
	at := time.Now().UnixMilli()
	if err := b.Append(self.Pod, "", 0.0, 0.0, 0.0, 0.0, at); err != nil {
		_ = b.Abort()
		return nil, fmt.Errorf("publish heartbeat: %w", err)
	}
	for _, d := range self.Tenants {
		if err := b.Append(self.Pod, string(d.Tenant), d.Ingest, d.Requests, d.Queries, d.Concurrent, at); err != nil {
			_ = b.Abort()
			return nil, fmt.Errorf("publish heartbeat: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return nil, fmt.Errorf("publish heartbeat: %w", err)
	}
	secs := int64(math.Ceil(maxAge.Seconds()))
	q := fmt.Sprintf("SELECT pod, tenant, argMax(ingest, at), argMax(requests, at), argMax(queries, at), argMax(concurrent, at) FROM %s WHERE seen >= now() - %d GROUP BY pod, tenant",
		p.schema.table(podsTable), secs)
	rows, err := p.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	defer rows.Close()
	byPod := map[string]*tenancy.PodReport{}
	var order []string
	for rows.Next() {
		var (
			pod, tenant string
			d           tenancy.TenantDemand
		)
		if err := rows.Scan(&pod, &tenant, &d.Ingest, &d.Requests, &d.Queries, &d.Concurrent); err != nil {
			return nil, fmt.Errorf("read heartbeats: %w", err)
		}
		r := byPod[pod]
		if r == nil {
			r = &tenancy.PodReport{Pod: pod}
			byPod[pod] = r
			order = append(order, pod)
		}
		if tenant != "" {
			d.Tenant = tenancy.ID(tenant)
			r.Tenants = append(r.Tenants, d)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read heartbeats: %w", err)
	}
	out := make([]tenancy.PodReport, 0, len(order))
	for _, pod := range order {
		out = append(out, *byPod[pod])
	}
	p.cleanup(ctx)
	return out, nil
}

// cleanup drops, about once an hour, the partitions of days before
// yesterday, on every node in cluster mode. Failures are logged: old rows
// are only space, never read (they are older than any maxAge).
func (p *Pods) cleanup(ctx context.Context) {
	p.mu.Lock()
	if time.Since(p.lastCleanup) < time.Hour {
		p.mu.Unlock()
		return
	}
	p.lastCleanup = time.Now()
	p.mu.Unlock()
	cutoff, _ := strconv.Atoi(time.Now().UTC().AddDate(0, 0, -1).Format("20060102"))
	local := p.schema.storageTable(podsTable)
	drop := func(conn driver.Conn) error {
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active", quote(p.schema.db), quote(local)))
		if err != nil {
			return err
		}
		var parts []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			parts = append(parts, v)
		}
		errs := []error{rows.Err()}
		rows.Close()
		for _, part := range parts {
			// The server's day may differ from ours by the time zone: one
			// day more of margin.
			if day, err := strconv.Atoi(part); err == nil && day < cutoff-1 {
				if err := conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DROP PARTITION %d", p.schema.table(local), day)); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	var err error
	if p.schema.cluster == "" {
		err = drop(p.conn)
	} else {
		var nodes []string
		if nodes, err = clusterNodes(ctx, p.conn, p.schema.cluster); err == nil {
			var errs []error
			for _, addr := range nodes {
				o := *p.opts
				o.Addr = []string{addr}
				o.MaxOpenConns, o.MaxIdleConns = 1, 1
				node, oerr := ch.Open(&o)
				if oerr != nil {
					errs = append(errs, oerr)
					continue
				}
				errs = append(errs, drop(node))
				node.Close()
			}
			err = errors.Join(errs...)
		}
	}
	if err != nil && ctx.Err() == nil {
		p.logger.Warn("old pods heartbeats not dropped", slog.Any("err", err))
	}
}
