#!/usr/bin/env bash
# Prints the path of an OpenTelemetry Collector binary (the otlp receiver
# and the otlphttp exporter, nothing else), building it first into a cache
# directory outside the repository when it is not there. deploy's
# TestOTelCollectorSnippet runs docs/snippets/otel-collector.yaml with it
# between the OpenTelemetry SDK and a real Luminate.
#
# It is built in a scratch module of its own: the Collector modules need a
# newer go.opentelemetry.io/collector/pdata than the one the prometheus
# module pins in Luminate's go.mod, which stays as it is. The first build
# downloads the Collector's modules and takes two to four minutes on a
# 2-core machine.
set -euo pipefail

go="${GO:-go}"
version="0.165.0" # the Collector's release: v0.165.0 modules (v1.71.0 for the stable ones)
dir="${LUMINATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/luminate}/otelcol-$version"
bin="$dir/otelcol"
if [[ ! -x "$bin" ]]; then
	scratch="$(mktemp -d)"
	trap 'rm -rf "$scratch"' EXIT
	echo "otelcol: building the OpenTelemetry Collector $version into $dir; this takes a few minutes the first time" >&2
	mkdir -p "$dir"
	(
		cd "$scratch"
		"$go" mod init luminate.local/otelcol >/dev/null 2>&1
		cat >main.go <<'GO'
// Command otelcol is an OpenTelemetry Collector with the otlp receiver
// and the otlphttp exporter, for Luminate's tests.
package main

import (
	"log"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

func components() (otelcol.Factories, error) {
	f := otelcol.Factories{Telemetry: otelconftelemetry.NewFactory()}
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](otlphttpexporter.NewFactory())
	return f, err
}

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol", Description: "OpenTelemetry Collector for Luminate's tests", Version: "VERSION"},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		log.Fatal(err)
	}
}
GO
		sed -i "s/VERSION/$version/" main.go
		"$go" get go.opentelemetry.io/collector/otelcol@v$version \
			go.opentelemetry.io/collector/receiver/otlpreceiver@v$version \
			go.opentelemetry.io/collector/exporter/otlphttpexporter@v$version \
			go.opentelemetry.io/collector/service@v$version >&2
		"$go" mod tidy >&2
		"$go" build -trimpath -o "$bin.tmp" .
	)
	mv "$bin.tmp" "$bin"
fi
echo "$bin"
