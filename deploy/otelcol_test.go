package deploy

// The OpenTelemetry Collector snippet (docs/snippets/otel-collector.yaml)
// and the README's Collector exporter block: the YAML names Luminate's OTLP
// path, the README shows what the file holds, and a real Collector built by
// scripts/otelcol.sh runs the file, as pasted with only addresses replaced,
// between the OpenTelemetry Go SDK and a real Luminate.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/otlp"
)

// The placeholders of docs/snippets/otel-collector.yaml a user replaces.
const (
	collectorLuminate = "luminate.example.com:9201"
	collectorReceiver = "localhost:4318"
	collectorTokenEnv = "LUMINATE_TOKEN"
)

// envOtelcol names the Collector binary; scripts/otelcol.sh builds it.
const envOtelcol = "LUMINATE_OTELCOL"

// collectorConfig is what the test reads of a Collector configuration.
type collectorConfig struct {
	Receivers map[string]struct {
		Protocols map[string]struct {
			Endpoint string `yaml:"endpoint"`
		} `yaml:"protocols"`
	} `yaml:"receivers"`
	Exporters map[string]struct {
		Endpoint    string            `yaml:"endpoint"`
		Headers     map[string]string `yaml:"headers"`
		Compression string            `yaml:"compression"`
	} `yaml:"exporters"`
	Service struct {
		Pipelines map[string]struct {
			Receivers []string `yaml:"receivers"`
			Exporters []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// TestOTelCollectorSnippet checks the Collector snippet and runs it.
func TestOTelCollectorSnippet(t *testing.T) {
	snippet := string(readFile(t, filepath.Join(snippetsDir, "otel-collector.yaml")))
	var cfg collectorConfig
	require.NoError(t, yaml.Unmarshal([]byte(snippet), &cfg))
	exp, ok := cfg.Exporters["otlphttp/luminate"]
	require.True(t, ok, "an otlphttp exporter: %v", cfg.Exporters)
	// The exporter appends /v1/metrics to its endpoint.
	require.Equal(t, "http://"+collectorLuminate+"/otlp", exp.Endpoint)
	require.Contains(t, otlp.Paths(), "/otlp/v1/metrics", "Luminate serves what the exporter sends to")
	require.Equal(t, "Bearer ${env:"+collectorTokenEnv+"}", exp.Headers["Authorization"])
	require.Equal(t, "gzip", exp.Compression)
	require.Equal(t, collectorReceiver, cfg.Receivers["otlp"].Protocols["http"].Endpoint)
	require.Equal(t, []string{"otlphttp/luminate"}, cfg.Service.Pipelines["metrics"].Exporters)

	t.Run("README", func(t *testing.T) {
		// The README's exporter block is the snippet's exporters section.
		readme := string(readFile(t, filepath.Join(repoRoot, "README.md")))
		_, section, ok := strings.Cut(readme, "\n### OpenTelemetry\n")
		require.True(t, ok)
		section, _, _ = strings.Cut(section, "\n### ")
		_, block, ok := strings.Cut(section, "```yaml\n")
		require.True(t, ok, "the README shows the Collector's exporter")
		block, _, _ = strings.Cut(block, "```")
		require.Contains(t, snippet, block, "the README's exporter is the snippet's")
		require.Contains(t, section, "docs/snippets/otel-collector.yaml")
	})

	bin := otelcolBinary(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "hmac.secret")
	writeFile(t, secret, []byte(newHMACSecret(t)), 0o400)
	lum := startLuminate(t, "serve", "--storage.badger.path="+filepath.Join(dir, "data"), "--auth.jwt.hmac-secret-file="+secret)
	lum.waitReady()
	write := mintToken(t, secret, "collector", "metrics:write")
	read := mintToken(t, secret, "collector", "metrics:read")

	receiver := proctest.FreeAddr(t)
	cfgFile := filepath.Join(dir, "otel-collector.yaml")
	writeFile(t, cfgFile, []byte(strings.NewReplacer(collectorLuminate, lum.addr, collectorReceiver, receiver).Replace(snippet)), 0o644)
	// The exporter's current name is valid too.
	current := filepath.Join(dir, "otel-collector-otlp_http.yaml")
	writeFile(t, current, []byte(strings.ReplaceAll(string(readFile(t, cfgFile)), "otlphttp/", "otlp_http/")), 0o644)
	for _, f := range []string{cfgFile, current} {
		validate := exec.Command(bin, "validate", "--config=file:"+f)
		validate.Env = append(os.Environ(), collectorTokenEnv+"="+write)
		out, err := validate.CombinedOutput()
		require.NoError(t, err, "otelcol validate %s: %s", f, out)
	}

	cmd := exec.Command(bin, "--config=file:"+cfgFile)
	cmd.Env = append(os.Environ(), collectorTokenEnv+"="+write)
	col := proctest.Start(t, "otelcol", cmd)
	col.Grace = 10 * time.Second

	// The SDK exports to the Collector (no token: the Collector holds it).
	ctx := context.Background()
	proctest.Eventually(t, waitTimeout, func() (bool, string) {
		if col.Exited() {
			t.Fatalf("otelcol exited: %s", col.Out.String())
		}
		return strings.Contains(col.Out.String(), "Everything is ready"), "the Collector is not ready yet"
	}, "the Collector ready")
	exporter, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL("http://"+receiver+"/v1/metrics"))
	require.NoError(t, err)
	res := resource.NewSchemaless(attribute.String("service.name", "cart"), attribute.String("service.namespace", "shop"),
		attribute.String("service.instance.id", "cart-1"), attribute.String("host.name", "node-3"))
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	counter, err := provider.Meter("deploy").Int64Counter("cart.checkouts", metric.WithUnit("{checkout}"))
	require.NoError(t, err)
	counter.Add(ctx, 5, metric.WithAttributes(attribute.String("payment.method", "card")))
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	require.NoError(t, exporter.Export(ctx, &rm))
	require.NoError(t, exporter.Shutdown(ctx))

	// The Collector forwards it to Luminate, under the token's tenant.
	now := time.Now().UnixMilli()
	proctest.Eventually(t, 30*time.Second, func() (bool, string) {
		if strings.Contains(col.Out.String(), "Dropping data") {
			t.Fatalf("the Collector dropped the export: %s", lastLines(col.Out.String(), 3))
		}
		v := queryValues(t, lum.url(""), read, `cart_checkouts_total{job="shop/cart",instance="cart-1",payment_method="card"}`, time.Now().UnixMilli())
		return slices.Equal(v, []any{5.0}), fmt.Sprintf("%v; collector: %s", v, lastLines(col.Out.String(), 5))
	}, "the counter in Luminate")
	v := queryValues(t, lum.url(""), read, `target_info{job="shop/cart",instance="cart-1",host_name="node-3"}`, now+60_000)
	require.Equal(t, []any{1.0}, v, "target_info from the resource")
	require.True(t, col.Stop(10*time.Second), "the Collector stops on SIGTERM")
	lum.stop()
}

// otelcolBinary returns the Collector binary: $LUMINATE_OTELCOL, else where
// scripts/otelcol.sh caches it. Without one the test is skipped, or fails
// under CI=true, where scripts/test-deps.sh builds it.
func otelcolBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envOtelcol); p != "" {
		require.FileExists(t, p, "%s (run scripts/otelcol.sh)", envOtelcol)
		return p
	}
	dir := os.Getenv("LUMINATE_CACHE_DIR")
	if dir == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			require.NoError(t, err)
			base = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(base, "luminate")
	}
	if p := filepath.Join(dir, "otelcol-0.165.0", "otelcol"); proctest.FileExists(p) {
		return p
	}
	msg := "OpenTelemetry Collector not found: set " + envOtelcol + "=$(scripts/otelcol.sh) (it builds it once, a few minutes) or run make test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lastLines is the last n lines of out.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
