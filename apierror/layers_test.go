package apierror_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// module is Luminate's module path.
const module = "github.com/luminate-io/luminate/"

// layers are Luminate's packages from the top down; a package imports
// only packages of its own layer or below. A package path matches a layer
// by its first element (storage/badger is storage's).
var layers = [][]string{
	{"cmd", "deploy", "grafana", "internal"}, // binaries, the repository's own checks and their test harness
	{"api"},                                  // the edge: router, middleware, health
	{"promql", "remotewrite", "remoteread", "native", "otlp"}, // protocols
	{"apierror", "storage"},                                   // errors to statuses; the storage contract and backends
	{"tenancy"},                                               // tenants, tokens, limits
}

// protocols is the layer of the protocols. They are peers: none imports
// another, except those in peerImports, and the edge (api) imports none
// of them (cmd mounts their routes on it).
const protocols = 2

// peerImports are the imports allowed between protocols: the native write
// and OTLP ingest through remote write's pipeline (its validation, limits
// and in-flight budget), and the native query runs on the PromQL engine.
var peerImports = map[string][]string{
	"native": {"remotewrite", "promql"},
	"otlp":   {"remotewrite"},
}

// testOnly are packages for tests: only _test.go files import them.
var testOnly = []string{"internal/proctest"}

func layerOf(pkg string) int {
	top, _, _ := strings.Cut(pkg, "/")
	for i, l := range layers {
		for _, name := range l {
			if top == name {
				return i
			}
		}
	}
	return -1
}

// TestLayers fails when a package imports a layer above its own, or is in
// no layer (add it to layers where it belongs). Test files are not
// counted: a test may drive its package from above.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	require.NoError(t, err, "go list")
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 10, "go list found too few packages:\n%s", out)
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		from := layerOf(pkg)
		if from < 0 {
			t.Errorf("package %s is in no layer of TestLayers", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if slices.Contains(testOnly, dep) {
				t.Errorf("%s imports %s, which is for tests only", pkg, dep)
			}
			to := layerOf(dep)
			top, _, _ := strings.Cut(pkg, "/")
			depTop, _, _ := strings.Cut(dep, "/")
			switch {
			case to < from:
				t.Errorf("%s (layer %v) imports %s (layer %v), a layer above it", pkg, layers[from], dep, layers[to])
			case to == protocols && top == "api":
				t.Errorf("api imports the protocol %s: the edge serves what cmd mounts, it knows no protocol", dep)
			case to == protocols && from == protocols && top != depTop && !slices.Contains(peerImports[top], depTop):
				t.Errorf("protocol %s imports protocol %s: protocols are peers (allowed: %v)", pkg, dep, peerImports)
			}
		}
	}
}
