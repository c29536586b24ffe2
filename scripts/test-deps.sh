#!/usr/bin/env bash
# Checks that the programs Luminate's tests run for real are installed:
# clickhouse-server (ClickHouse backend tests), prometheus + promtool
# (end-to-end tests, rule checks) and busybox (the image HEALTHCHECK), all
# from Debian packages. Run as root on
# a machine missing them, it installs them with apt-get; otherwise it prints
# exactly what to install and exits non-zero.
#
# Then it provides Prometheus 3.x, which Debian does not ship (the
# full-fidelity end-to-end test needs it): scripts/prometheus3.sh builds it
# once from go.mod's prometheus module into a cache outside the repository
# (a few minutes the first time) and prints its path; `make test` passes
# that path to the tests as LUMINATE_PROMETHEUS3. Likewise
# scripts/otelcol.sh builds an OpenTelemetry Collector (the Collector
# snippet's test runs it), passed as LUMINATE_OTELCOL. And
# scripts/victoriametrics.sh builds VictoriaMetrics single-node once (the
# benchmark compares with it; `make bench` passes it as
# LUMINATE_VICTORIAMETRICS).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

# prometheus3: build (or find) the cached Prometheus 3.x, and the cached
# OpenTelemetry Collector (scripts/otelcol.sh, for the Collector snippet's
# test); their paths go to stderr only, so that this script's output stays
# what it was.
prometheus3() {
	local bin
	bin="$("$here/prometheus3.sh")"
	echo "test-deps: Prometheus 3.x at $bin" >&2
	bin="$("$here/otelcol.sh")"
	echo "test-deps: OpenTelemetry Collector at $bin" >&2
	bin="$("$here/victoriametrics.sh")"
	echo "test-deps: VictoriaMetrics at $bin" >&2
}

# have NAME: is NAME a program on PATH or in the sbin directories, where
# Debian puts clickhouse-server and which non-root PATHs often lack?
have() {
	command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]
}

missing_packages() {
	local pkgs=()
	have clickhouse-server || pkgs+=(clickhouse-server)
	have busybox || pkgs+=(busybox-static) # runs the image's HEALTHCHECK command in deploy tests
	[[ -f /usr/share/java/zookeeper.jar ]] || pkgs+=(zookeeper) # replicated ClickHouse test
	have npm || pkgs+=(npm)                                     # installs chDB for the modern-engine check
	if ! have prometheus || ! have promtool; then
		pkgs+=(prometheus) # the Debian package ships both
	fi
	echo "${pkgs[@]}"
}

read -r -a pkgs <<<"$(missing_packages)"
if ((${#pkgs[@]} == 0)); then
	prometheus3
	exit 0
fi

if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: installing ${pkgs[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y "${pkgs[@]}"
	read -r -a still <<<"$(missing_packages)"
	if ((${#still[@]} > 0)); then
		echo "test-deps: still missing after apt-get install: ${still[*]}" >&2
		exit 1
	fi
	prometheus3
	exit 0
fi

echo "test-deps: the tests need programs that are not installed: ${pkgs[*]}" >&2
echo "test-deps: install them (Debian/Ubuntu) with:" >&2
echo "    sudo apt-get update && sudo apt-get install -y ${pkgs[*]}" >&2
echo "test-deps: then run make test again." >&2
exit 1
