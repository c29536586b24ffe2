package otlp

// Paths are the receiver's routes: OTLP/HTTP's own path, under
// /prometheus too (as Mimir serves it), and Prometheus 3's, so that an
// exporter pointed at a Prometheus URL works unchanged.
func Paths() []string {
	return []string{"/otlp/v1/metrics", "/prometheus/otlp/v1/metrics", "/api/v1/otlp/v1/metrics", "/prometheus/api/v1/otlp/v1/metrics"}
}
