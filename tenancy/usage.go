package tenancy

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Usage counts what each tenant uses, for chargeback: samples ingested and
// queries run since the process started. The ingest path (through the
// store's appenders) and the router (admitted queries) add to it; the
// operator's usage endpoint reads it, with the store's active series and
// bytes stored. It is also a prometheus.Collector of the counters. Safe
// for concurrent use; its memory grows with the tenants seen, which are
// verified tenants only.
type Usage struct {
	mu      sync.RWMutex
	tenants map[ID]*tenantUsage
}

type tenantUsage struct {
	samples, exemplars, queries atomic.Uint64
}

// UsageCounts are one tenant's counters.
type UsageCounts struct {
	SamplesIngested   uint64
	ExemplarsIngested uint64
	Queries           uint64
}

// NewUsage returns empty counters.
func NewUsage() *Usage { return &Usage{tenants: map[ID]*tenantUsage{}} }

func (u *Usage) tenant(id ID) *tenantUsage {
	u.mu.RLock()
	t := u.tenants[id]
	u.mu.RUnlock()
	if t != nil {
		return t
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if t = u.tenants[id]; t == nil {
		t = &tenantUsage{}
		u.tenants[id] = t
	}
	return t
}

// AddSamples counts n samples (floats or histograms) of tenant id stored.
func (u *Usage) AddSamples(id ID, n int) {
	if u != nil && n > 0 {
		u.tenant(id).samples.Add(uint64(n))
	}
}

// AddExemplars counts n exemplars of tenant id stored.
func (u *Usage) AddExemplars(id ID, n int) {
	if u != nil && n > 0 {
		u.tenant(id).exemplars.Add(uint64(n))
	}
}

// AddQuery counts one query of tenant id admitted.
func (u *Usage) AddQuery(id ID) {
	if u != nil {
		u.tenant(id).queries.Add(1)
	}
}

// Tenants lists the tenants counted, sorted.
func (u *Usage) Tenants() []ID {
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := make([]ID, 0, len(u.tenants))
	for id := range u.tenants {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Counts returns tenant id's counters (zero for a tenant not seen).
func (u *Usage) Counts(id ID) UsageCounts {
	u.mu.RLock()
	t := u.tenants[id]
	u.mu.RUnlock()
	if t == nil {
		return UsageCounts{}
	}
	return UsageCounts{SamplesIngested: t.samples.Load(), ExemplarsIngested: t.exemplars.Load(), Queries: t.queries.Load()}
}

var (
	usageSamplesDesc   = prometheus.NewDesc("luminate_usage_samples_ingested_total", "Samples stored per tenant since the process started (usage for chargeback).", []string{"tenant"}, nil)
	usageExemplarsDesc = prometheus.NewDesc("luminate_usage_exemplars_ingested_total", "Exemplars stored per tenant since the process started.", []string{"tenant"}, nil)
	usageQueriesDesc   = prometheus.NewDesc("luminate_usage_queries_total", "Queries admitted per tenant since the process started.", []string{"tenant"}, nil)
)

// Describe implements prometheus.Collector.
func (u *Usage) Describe(ch chan<- *prometheus.Desc) {
	ch <- usageSamplesDesc
	ch <- usageExemplarsDesc
	ch <- usageQueriesDesc
}

// Collect implements prometheus.Collector.
func (u *Usage) Collect(ch chan<- prometheus.Metric) {
	for _, id := range u.Tenants() {
		c := u.Counts(id)
		ch <- prometheus.MustNewConstMetric(usageSamplesDesc, prometheus.CounterValue, float64(c.SamplesIngested), string(id))
		ch <- prometheus.MustNewConstMetric(usageExemplarsDesc, prometheus.CounterValue, float64(c.ExemplarsIngested), string(id))
		ch <- prometheus.MustNewConstMetric(usageQueriesDesc, prometheus.CounterValue, float64(c.Queries), string(id))
	}
}
