package otlp

import (
	"bytes"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/luminate-io/luminate/remotewrite"
	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/storage/badger"
	"github.com/luminate-io/luminate/tenancy"
)

// Steady state, the series cache takes the points of known series: the
// benchmark's 10,000 gauge and sum points and 500 classic histograms
// (and 500 summaries, not cached), sent three times, are appended by
// their handles from the second time on, but for the first point of each
// family of each request (its metadata).
func TestSeriesCacheHits(t *testing.T) {
	store, err := badger.New(badger.Config{Path: t.TempDir()}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	var cfg remotewrite.Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg.Retention = 30 * 24 * time.Hour
	h := NewHandler(remotewrite.NewIngester(cfg, nil, nil, prometheus.NewRegistry()), DefaultConfig(), nil, nil)
	principal := tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeWrite}}
	tenant := storage.Tenant{Principal: principal, Store: store.ForTenant(principal.Tenant)}
	serve := func(body []byte) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/otlp/v1/metrics", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := h.Serve(r, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if rr := resp.(*Response); rr.Rejected > 0 {
			t.Fatalf("%+v", rr)
		}
	}
	base := time.Now().Add(-time.Hour)
	for i := range 3 {
		body, _ := benchBodyAt(t, base.Add(time.Duration(i)*10*time.Second), time.Second)
		serve(body)
		serve(histogramBodyAt(t, base.Add(time.Duration(i)*100*time.Second)))
	}
	// 10,000 points of 1,000 series a request, and 500 histograms of 100:
	// the first request creates the series; the second finds them by
	// their labels (the first point of each) and caches them; the third
	// appends all by handle but for the first point of each of the 101
	// families (its metadata).
	want := int64(10_000-1_000) + int64(500-100) + int64(10_000-100) + int64(500-1)
	if got := h.cache.hits.Load(); got != want {
		t.Fatalf("%d points appended by handle, want %d", got, want)
	}
}

// The cache spreads its keys over every shard, so that it holds its size.
func TestSeriesCacheShards(t *testing.T) {
	c := newSeriesCache(cacheShards * 4)
	var pk pointKeys
	used := map[*cacheShard]bool{}
	for i := range 10 * cacheShards {
		pk.reset()
		pk.u64(uint64(i))
		used[c.shard(pk.key(c))] = true
	}
	if len(used) != cacheShards {
		t.Fatalf("%d shards of %d used", len(used), cacheShards)
	}
}
