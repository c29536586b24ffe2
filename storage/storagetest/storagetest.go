// Package storagetest is the conformance suite every Luminate storage
// backend runs: one set of cases, asserting real behaviour through the
// Prometheus storage interfaces of a tenant-scoped storage.TenantStore, plus
// the upstream PromQL acceptance suite with the backend as its storage.
//
// A backend plugs in through Backend and calls Run and RunPromQL from its own
// tests, on real storage (a Badger directory under t.TempDir(), a real
// ClickHouse server). The cases are the contract: a backend that fails one
// has a bug, the case is not adjusted to the backend.
//
// It is not a benchmark harness and holds no backend-specific knowledge.
package storagetest

import (
	"testing"

	"github.com/luminate-io/luminate/storage"
	"github.com/luminate-io/luminate/tenancy"
)

// Backend opens stores for the suite.
//
// The suite closes some stores itself (Reopen, the PromQL suite): the
// cleanup a backend registers in Open must tolerate a store that is already
// closed.
type Backend struct {
	// Open returns a new, empty store (each call isolated from the others).
	// The backend releases it when t ends.
	Open func(t testing.TB) storage.MetricsStore
	// Reopen closes s and opens it again over the same data (persistence
	// check), with the same bounds when Limited opened it. The returned
	// store replaces s.
	Reopen func(t testing.TB, s storage.MetricsStore) storage.MetricsStore
	// Limited is Open with per-tenant bounds: every tenant may keep at
	// most maxExemplars exemplars and the metadata of maxMetadata metric
	// families (0: unlimited), as the backend's Config.ExemplarLimits and
	// MetadataLimits set them.
	Limited func(t testing.TB, maxExemplars, maxMetadata int) storage.MetricsStore

	// Retained is Open with per-tenant retention p (the backend's
	// Config.RetentionPolicy), and cleanup runs the backend's retention
	// pass at once and returns when what it deletes is gone (retention.go).
	// Nil skips the retention cases.
	Retained func(t testing.TB, p storage.RetentionPolicy) (s storage.MetricsStore, cleanup func(testing.TB))
	// StatsMissRewritten says that Cardinality's maintained statistics do
	// not count a series deleted over all its data and written again on
	// the same UTC day (ClickHouse: they subtract what delete_series
	// forgot by day; docs/operations.md, Cardinality and usage). Every
	// other read of it is checked all the same.
	StatsMissRewritten bool
}

// Tenants the cases use. tenantA and tenantA1 share a prefix on purpose: a
// key layout that concatenates tenant and series without a separator mixes
// them.
const (
	tenantA  tenancy.ID = "acme"
	tenantA1 tenancy.ID = "acme-1"
	tenantB  tenancy.ID = "bravo"
	tenantC  tenancy.ID = "charlie"
)

// Run runs every conformance case as a subtest of t.
func Run(t *testing.T, b Backend) {
	if b.Open == nil || b.Reopen == nil || b.Limited == nil {
		t.Fatal("storagetest.Backend needs Open, Reopen and Limited")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, b Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Matchers", testMatchers},
		{"LabelNames", testLabelNames},
		{"LabelValues", testLabelValues},
		{"SeriesListing", testSeriesListing},
		{"TenantIsolation", testTenantIsolation},
		{"TenantLabelRefused", testTenantLabelRefused},
		{"OutOfOrderAndDuplicates", testOutOfOrderAndDuplicates},
		{"SpecialFloats", testSpecialFloats},
		{"Rollback", testRollback},
		{"ConcurrentAppenders", testConcurrentAppenders},
		{"ManySeries", testManySeries},
		{"LongSeries", testLongSeries},
		{"Persistence", testPersistence},
		{"ContinueAfterReopen", testContinueAfterReopen},
		{"Cardinality", testCardinality},
		{"HistogramRoundTrip", testHistogramRoundTrip},
		{"HistogramOutOfOrder", testHistogramOutOfOrder},
		{"HistogramPersistence", testHistogramPersistence},
		{"HistogramTenantIsolation", testHistogramTenantIsolation},
		{"Exemplars", testExemplars},
		{"ExemplarBound", testExemplarBound},
		{"ExemplarPersistence", testExemplarPersistence},
		{"ExemplarTenantIsolation", testExemplarTenantIsolation},
		{"Metadata", testMetadata},
		{"MetadataBound", testMetadataBound},
		{"MetadataPersistence", testMetadataPersistence},
		{"MetadataTenantIsolation", testMetadataTenantIsolation},
		{"RetentionPerTenant", testRetentionPerTenant},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}
