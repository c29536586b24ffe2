#!/usr/bin/env bash
# Prints the path of a Prometheus 3.x server binary, building it first into a
# cache directory outside the repository when it is not there. Debian ships
# Prometheus 2.42; the full-fidelity end-to-end tests (native histograms,
# remote write 2.0, created timestamps) need 3.x. It is built from the
# github.com/prometheus/prometheus module version that go.mod requires, in a
# scratch module, so tests and the library code agree on one Prometheus. The
# first build takes a few minutes on a 2-core machine; remove_all_sd leaves
# out the service discoveries the tests never use (static_configs stay), and
# without builtinassets the web UI is not embedded: the HTTP API is all the
# tests need.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
go="${GO:-go}"
modver="$(cd "$root" && "$go" list -m -f '{{.Version}}' github.com/prometheus/prometheus)"
# Module v0.MMM.P is Prometheus 3.(MMM-300).P.
minor="${modver#v0.}"; patch="${minor#*.}"; minor="${minor%%.*}"
version="3.$((10#$minor - 300)).$patch"
dir="${LUMINATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/luminate}/prometheus-$version"
bin="$dir/prometheus"
if [[ ! -x "$bin" ]]; then
	scratch="$(mktemp -d)"
	trap 'rm -rf "$scratch"' EXIT
	echo "prometheus3: building Prometheus $version ($modver) into $dir; this takes about ten minutes the first time" >&2
	mkdir -p "$dir"
	(
		cd "$scratch"
		"$go" mod init luminate.local/prometheus3 >/dev/null 2>&1
		# The same module graph as Luminate's, so the build needs no new downloads.
		cp "$root/go.sum" go.sum
		"$go" mod edit -require="github.com/prometheus/prometheus@$modver"
		cat >tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
GO
		"$go" mod tidy >&2
		"$go" build -tags netgo,remove_all_sd -trimpath \
			-ldflags "-X github.com/prometheus/common/version.Version=$version" \
			-o "$bin.tmp" github.com/prometheus/prometheus/cmd/prometheus
	)
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
