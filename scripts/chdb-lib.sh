#!/usr/bin/env bash
# Prints the path of libchdb.so (chDB 26.x, ClickHouse embedded), installing
# the npm package @chdb/lib-linux-x64-gnu into a cache directory outside the
# repository first when it is not there. The modern-engine check of
# storage/clickhouse (go test -tags chdb) loads it through CHDB_LIB_PATH.
set -euo pipefail

version=26.5.3
dir="${LUMINATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/luminate}/chdb-$version"
lib="$dir/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"
if [[ ! -f "$lib" ]]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "chdb-lib: npm is needed to install @chdb/lib-linux-x64-gnu@$version (apt-get install -y npm)" >&2
		exit 1
	fi
	mkdir -p "$dir"
	echo "chdb-lib: installing @chdb/lib-linux-x64-gnu@$version into $dir" >&2
	npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "@chdb/lib-linux-x64-gnu@$version" >&2
fi
[[ -f "$lib" ]] || { echo "chdb-lib: $lib missing after npm install" >&2; exit 1; }
echo "$lib"
