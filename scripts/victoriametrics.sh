#!/usr/bin/env bash
# Prints the path of a VictoriaMetrics single-node server binary, building
# it first into a cache directory outside the repository when it is not
# there, as scripts/prometheus3.sh caches Prometheus 3.x. `make bench`
# compares Luminate with it (issue 15). It is the module's own build:
# `go install .../app/victoria-metrics@VERSION`, in its own module graph
# (GOFLAGS=-mod=mod, outside this repository), so Luminate's go.mod is not
# involved. The first build downloads the module and takes a minute or two.
set -euo pipefail

go="${GO:-go}"
version="${LUMINATE_VICTORIAMETRICS_VERSION:-1.151.0}"
dir="${LUMINATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/luminate}/victoriametrics-$version"
bin="$dir/victoria-metrics"
if [[ ! -x "$bin" ]]; then
	echo "victoriametrics: building VictoriaMetrics v$version into $dir; this takes a minute or two the first time" >&2
	mkdir -p "$dir"
	scratch="$(mktemp -d)"
	trap 'rm -rf "$scratch"' EXIT
	# Outside any module, so that go install resolves the module at its version.
	(cd "$scratch" && GOBIN="$scratch" GOFLAGS=-mod=mod "$go" install \
		"github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v$version" >&2)
	mv "$scratch/victoria-metrics" "$bin.tmp"
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
