package clickhouse

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	insertedRows     *prometheus.CounterVec
	insertErrors     prometheus.Counter
	insertDuration   prometheus.Histogram
	commitsPerInsert prometheus.Histogram
	queries          *prometheus.CounterVec
	queryErrors      *prometheus.CounterVec
	queryDuration    *prometheus.HistogramVec
	activeSeries     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		insertedRows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_clickhouse_inserted_rows_total",
			Help: "Rows inserted into ClickHouse, by table.",
		}, []string{"table"}),
		insertErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "luminate_clickhouse_insert_errors_total",
			Help: "Group-commit inserts that failed (their commits answered unavailable).",
		}),
		insertDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "luminate_clickhouse_insert_duration_seconds",
			Help:    "Duration of one group-commit insert (series and samples).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		commitsPerInsert: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "luminate_clickhouse_commits_per_insert",
			Help:    "Appender commits merged into one insert.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_clickhouse_queries_total",
			Help: "Read queries sent to ClickHouse, by kind.",
		}, []string{"kind"}),
		queryErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_clickhouse_query_errors_total",
			Help: "Read queries that failed, by kind.",
		}, []string{"kind"}),
		queryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "luminate_clickhouse_query_duration_seconds",
			Help:    "Time to the first row of a read query, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"kind"}),
		activeSeries: f.NewGauge(prometheus.GaugeOpts{
			Name: "luminate_clickhouse_cached_series",
			Help: "Series in the per-tenant caches (active within 24h), as of the last prune.",
		}),
	}
}
