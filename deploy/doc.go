// Package deploy holds Luminate's deployment manifests and their invariant
// tests: the container image (Dockerfile), a Docker Compose stack on a
// ClickHouse cluster of 2 shards x 2 replicas (docker-compose.yml and
// compose/), Kubernetes manifests for kustomize (kubernetes/base and the
// overlays clickhouse and badger) and Prometheus alerting rules
// (prometheus/). The ClickHouse server configuration it mounts lives in
// clickhouse/.
//
// There is no Docker engine or cluster in the tests: they parse every
// manifest, resolve the kustomize overlays, and check what a deployment
// relies on (replicas, rolling update, anti-affinity, probes on real
// endpoints, resources, autoscaling bounds, a non-root image with a health
// check, the token wiring of the compose stack). The configuration files
// the manifests mount are given to a real luminate binary, built by the
// test, which must accept them and serve; the alerting rules go through
// promtool, and the operator guide's snippets (docs/snippets) through
// promtool and a real Prometheus.
//
// The package has no Go code besides its tests; nothing imports it.
package deploy
