// Package grafana holds what Grafana needs to show Luminate: provisioning
// files for a Prometheus-type data source pointing at Luminate and for a
// dashboard provider, and the self-monitoring dashboard built on Luminate's
// own /metrics. The files are the product; the package only names the
// conventions they share with deployments, and its tests check them:
//
//   - provisioning/datasources/luminate.yaml: the "Luminate" data source
//     (type prometheus, uid DataSourceUID) at $LUMINATE_URL, sending
//     "Authorization: Bearer $LUMINATE_TOKEN". Grafana expands the two
//     environment variables (EnvURL, EnvToken) when it starts; it has no
//     default-value syntax, so a deployment sets both (DefaultURL for a
//     service named luminate on Luminate's default port).
//   - provisioning/dashboards/luminate.yaml: a file provider loading the
//     JSON files of dashboards/, which a deployment mounts at DashboardsDir
//     (and provisioning/ at ProvisioningDir).
//   - dashboards/luminate.json: the "Luminate" dashboard (uid DashboardUID):
//     ingest, rejections, active series, HTTP and query latency, auth
//     failures, rate limiting, Badger and ClickHouse storage, Go runtime and
//     build info. Its queries read Luminate's metrics from whichever
//     Prometheus-type data source stores them (the $datasource variable):
//     a Prometheus scraping Luminate, or Luminate itself when that
//     Prometheus remote-writes to it.
//
// The tests parse both provisioning files, parse every PromQL expression of
// the dashboard with Prometheus' parser, and check that every metric the
// dashboard reads is one a Luminate server assembled from the real
// components actually serves on /metrics (and that every luminate_* metric
// it serves is on the dashboard).
//
// It is not a Grafana client or plugin, and nothing in Luminate imports it
// at run time.
package grafana

// Conventions shared by the provisioning files and deployments.
const (
	// EnvURL names the environment variable holding Luminate's URL as
	// Grafana's server reaches it.
	EnvURL = "LUMINATE_URL"
	// EnvToken names the environment variable holding the bearer token
	// (scope metrics:read) the data source sends.
	EnvToken = "LUMINATE_TOKEN"
	// DefaultURL is the value of EnvURL when Luminate runs as a service
	// named luminate on its default port (--http.listen-address=:9201).
	DefaultURL = "http://luminate:9201"
	// DataSourceUID is the uid of the provisioned data source.
	DataSourceUID = "luminate"
	// DashboardUID is the uid of the self-monitoring dashboard.
	DashboardUID = "luminate-overview"
	// ProvisioningDir is where a deployment mounts provisioning/ in
	// Grafana's container (Grafana's default paths.provisioning).
	ProvisioningDir = "/etc/grafana/provisioning"
	// DashboardsDir is where a deployment mounts dashboards/ in Grafana's
	// container; the dashboard provider reads it.
	DashboardsDir = "/var/lib/grafana/dashboards/luminate"
)
