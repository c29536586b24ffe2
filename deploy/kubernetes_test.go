package deploy

// Tests of deploy/kubernetes: the invariants of each resolved overlay
// (probes, volumes, secrets, network policy, resources), and its
// configuration served for real.

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/grafana"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

// overlays are the kustomize overlays under kubernetes/overlays.
var overlays = []string{"clickhouse", "badger"}

// workload is the Luminate Deployment of a resolved overlay and what it
// refers to.
type workload struct {
	objs       []object
	deployment object
	container  object
	podLabels  map[string]any
	port       int    // the container port named http
	internal   int    // the container port named internal
	configFile string // --config.file as the container sees it
	config     []byte // its contents, from the ConfigMap
}

func loadOverlay(t testing.TB, overlay string) []object {
	t.Helper()
	objs, err := kustomize(filepath.Join("kubernetes", "overlays", overlay))
	require.NoError(t, err)
	return objs
}

func findWorkload(t testing.TB, objs []object) workload {
	t.Helper()
	deps := ofKind(objs, "Deployment")
	require.Len(t, deps, 1, "one Deployment")
	w := workload{objs: objs, deployment: deps[0]}
	cs := containersOf(w.deployment)
	require.Len(t, cs, 1, "one container")
	w.container = cs[0]
	w.podLabels, _ = get(w.deployment, "spec", "template", "metadata", "labels").(object)
	require.NotEmpty(t, w.podLabels)
	for _, p := range list(w.container["ports"]) {
		switch str(get(p, "name")) {
		case "http":
			w.port, _ = get(p, "containerPort").(int)
		case "internal":
			w.internal, _ = get(p, "containerPort").(int)
		}
	}
	require.NotZero(t, w.port, "a container port named http")
	require.NotZero(t, w.internal, "a container port named internal, for /metrics without a token")

	args := stringList(t, w.container["args"])
	require.Equal(t, "serve", args[0])
	var ok bool
	w.configFile, ok = flagValue(args, "config.file")
	require.True(t, ok, "the container is started with --config.file")
	w.config = w.mountedFile(t, w.configFile)
	return w
}

func stringList(t testing.TB, v any) []string {
	t.Helper()
	var out []string
	for _, e := range list(v) {
		s, ok := e.(string)
		require.True(t, ok, "%v is not a string", e)
		out = append(out, s)
	}
	return out
}

// volumeFor returns the volume mounted at the longest mount path holding
// path, and path relative to the mount.
func (w workload) volumeFor(t testing.TB, path string) (object, string) {
	t.Helper()
	var best object
	var rel string
	bestLen := -1
	for _, m := range list(w.container["volumeMounts"]) {
		mp := str(get(m, "mountPath"))
		if (path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) > bestLen {
			bestLen = len(mp)
			rel = strings.TrimPrefix(strings.TrimPrefix(path, mp), "/")
			best = nil
			for _, v := range list(get(w.deployment, "spec", "template", "spec", "volumes")) {
				if str(get(v, "name")) == str(get(m, "name")) {
					best = v.(object)
				}
			}
			require.NotNil(t, best, "volume %s of mount %s", get(m, "name"), mp)
		}
	}
	require.NotNil(t, best, "%s is in no mounted volume", path)
	return best, rel
}

// mountedFile returns the contents of the file at path in the container,
// from the ConfigMap or Secret mounted there.
func (w workload) mountedFile(t testing.TB, path string) []byte {
	t.Helper()
	vol, rel := w.volumeFor(t, path)
	switch {
	case get(vol, "configMap") != nil:
		cm := w.object(t, "ConfigMap", str(get(vol, "configMap", "name")))
		data, ok := get(cm, "data", rel).(string)
		require.True(t, ok, "ConfigMap %s has %s", name(cm), rel)
		return []byte(data)
	case get(vol, "secret") != nil:
		sec := w.object(t, "Secret", str(get(vol, "secret", "secretName")))
		key := rel
		if items := list(get(vol, "secret", "items")); items != nil {
			key = ""
			for _, it := range items {
				if str(get(it, "path")) == rel {
					key = str(get(it, "key"))
				}
			}
		}
		return []byte(secretValue(t, sec, key))
	}
	t.Fatalf("%s: not a ConfigMap or Secret volume", path)
	return nil
}

func (w workload) object(t testing.TB, kind, n string) object {
	t.Helper()
	i := indexOf(w.objs, kind, n)
	require.GreaterOrEqual(t, i, 0, "%s %s exists", kind, n)
	return w.objs[i]
}

func secretValue(t testing.TB, sec object, key string) string {
	t.Helper()
	if v, ok := get(sec, "stringData", key).(string); ok {
		return v
	}
	v, ok := get(sec, "data", key).(string)
	require.True(t, ok, "Secret %s has key %q", name(sec), key)
	b, err := base64.StdEncoding.DecodeString(v)
	require.NoError(t, err)
	return string(b)
}

// matches reports whether every label of selector is in labels.
func matches(selector any, labels map[string]any) bool {
	sel, ok := selector.(object)
	if !ok || len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort resolves a probe's or Service's port (a name or a number)
// against the container.
func (w workload) resolvePort(t testing.TB, port any) int {
	t.Helper()
	switch p := port.(type) {
	case int:
		return p
	case string:
		for _, cp := range list(w.container["ports"]) {
			if str(get(cp, "name")) == p {
				return get(cp, "containerPort").(int)
			}
		}
	}
	t.Fatalf("port %v names no container port", port)
	return 0
}

// listenPort is the port of the config's --http.listen-address (the flag's
// default when the file does not set it).
func listenPort(t testing.TB, config []byte) int {
	t.Helper()
	addr, ok := configValues(t, config)["http.listen-address"]
	if !ok {
		addr = ":9201"
	}
	return portOf(t, addr)
}

// internalListenPort is the port of the config's
// --http.internal-listen-address, which must be set.
func internalListenPort(t testing.TB, config []byte) int {
	t.Helper()
	addr, ok := configValues(t, config)["http.internal-listen-address"]
	require.True(t, ok, "the config sets http.internal-listen-address")
	return portOf(t, addr)
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

// quantity parses a Kubernetes quantity (500m, 2, 4Gi, 1G) into a number.
func quantity(t testing.TB, v any) float64 {
	t.Helper()
	s := fmt.Sprint(v)
	mult := 1.0
	for _, suf := range []struct {
		s string
		m float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if strings.HasSuffix(s, suf.s) {
			s, mult = strings.TrimSuffix(s, suf.s), suf.m
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err, "quantity %v", v)
	return f * mult
}

// checkWorkload checks the invariants every overlay keeps, and the
// overlay's own.
func checkWorkload(t *testing.T, objs []object, overlay string) {
	w := findWorkload(t, objs)
	spec := get(w.deployment, "spec").(object)
	pod := get(spec, "template", "spec").(object)
	cfg := configValues(t, w.config)

	t.Run("selector", func(t *testing.T) {
		require.True(t, matches(get(spec, "selector", "matchLabels"), w.podLabels), "the Deployment selects its pods")
	})
	t.Run("port", func(t *testing.T) {
		require.Equal(t, listenPort(t, w.config), w.port, "the container port is the one the config listens on")
		require.Equal(t, internalListenPort(t, w.config), w.internal, "the internal container port is the config's internal listener")
	})
	t.Run("probes", func(t *testing.T) {
		for probe, path := range map[string]string{"readinessProbe": pathReady, "livenessProbe": pathHealthy, "startupProbe": pathHealthy} {
			p := get(w.container, probe, "httpGet")
			if probe == "startupProbe" && get(w.container, probe) == nil {
				continue
			}
			require.NotNil(t, p, "%s is an HTTP probe", probe)
			require.Equal(t, path, str(get(p, "path")), probe)
			require.Equal(t, w.port, w.resolvePort(t, get(p, "port")), "%s asks the port Luminate listens on", probe)
		}
	})
	t.Run("resources", func(t *testing.T) {
		res := get(w.container, "resources")
		for _, r := range []string{"cpu", "memory"} {
			req, lim := get(res, "requests", r), get(res, "limits", r)
			require.NotNil(t, req, "requests.%s", r)
			require.NotNil(t, lim, "limits.%s", r)
			require.LessOrEqual(t, quantity(t, req), quantity(t, lim), "%s request within the limit", r)
		}
	})
	t.Run("security context", func(t *testing.T) {
		require.Equal(t, true, get(pod, "securityContext", "runAsNonRoot"))
		_, img := loadDockerfile(t)
		require.Equal(t, img.uid, get(pod, "securityContext", "runAsUser"), "the image's user")
		require.Equal(t, false, get(w.container, "securityContext", "allowPrivilegeEscalation"))
	})
	t.Run("anti-affinity", func(t *testing.T) {
		aa := get(pod, "affinity", "podAntiAffinity")
		var terms []any
		for _, p := range list(get(aa, "preferredDuringSchedulingIgnoredDuringExecution")) {
			terms = append(terms, get(p, "podAffinityTerm"))
		}
		terms = append(terms, list(get(aa, "requiredDuringSchedulingIgnoredDuringExecution"))...)
		found := false
		for _, term := range terms {
			if str(get(term, "topologyKey")) == "kubernetes.io/hostname" && matches(get(term, "labelSelector", "matchLabels"), w.podLabels) {
				found = true
			}
		}
		require.True(t, found, "pod anti-affinity over kubernetes.io/hostname for Luminate's own pods")
	})
	t.Run("volumes and secrets exist", func(t *testing.T) {
		for _, v := range list(get(pod, "volumes")) {
			switch {
			case get(v, "configMap") != nil:
				w.object(t, "ConfigMap", str(get(v, "configMap", "name")))
			case get(v, "secret") != nil:
				sec := w.object(t, "Secret", str(get(v, "secret", "secretName")))
				for _, it := range list(get(v, "secret", "items")) {
					secretValue(t, sec, str(get(it, "key")))
				}
			case get(v, "persistentVolumeClaim") != nil:
				w.object(t, "PersistentVolumeClaim", str(get(v, "persistentVolumeClaim", "claimName")))
			}
		}
		for _, e := range list(w.container["env"]) {
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				secretValue(t, w.object(t, "Secret", str(get(ref, "name"))), str(get(ref, "key")))
			}
		}
	})
	t.Run("files the config names are mounted", func(t *testing.T) {
		for _, key := range []string{"auth.jwt.hmac-secret-file", "limits.overrides-file"} {
			if p, ok := cfg[key]; ok {
				require.NotEmpty(t, w.mountedFile(t, p), "%s=%s", key, p)
			}
		}
	})
	t.Run("service", func(t *testing.T) {
		svcs := ofKind(objs, "Service")
		require.Len(t, svcs, 1)
		svc := svcs[0]
		require.True(t, matches(get(svc, "spec", "selector"), w.podLabels), "the Service selects Luminate's pods")
		ports := list(get(svc, "spec", "ports"))
		require.Len(t, ports, 2, "the API and the internal port")
		require.Equal(t, w.port, w.resolvePort(t, get(ports[0], "targetPort")))
		require.Equal(t, w.internal, w.resolvePort(t, get(ports[1], "targetPort")))
		require.Equal(t, grafana.DefaultURL, fmt.Sprintf("http://%s:%d", name(svc), get(ports[0], "port")),
			"Grafana's default LUMINATE_URL reaches the Service")

		sms := ofKind(objs, "ServiceMonitor")
		require.Len(t, sms, 1)
		sm := sms[0]
		require.Equal(t, "monitoring.coreos.com/v1", sm["apiVersion"])
		svcLabels, _ := get(svc, "metadata", "labels").(object)
		require.True(t, matches(get(sm, "spec", "selector", "matchLabels"), svcLabels), "the ServiceMonitor selects the Service")
		eps := list(get(sm, "spec", "endpoints"))
		require.Len(t, eps, 1)
		require.Equal(t, str(get(ports[1], "name")), str(get(eps[0], "port")),
			"Prometheus scrapes the internal port: /metrics wants an operator token on the API port")
		require.Equal(t, pathMetrics, str(get(eps[0], "path")))
	})
	t.Run("network policy: the internal port for the monitoring namespace only", func(t *testing.T) {
		nps := ofKind(objs, "NetworkPolicy")
		require.Len(t, nps, 1)
		np := nps[0]
		require.True(t, matches(get(np, "spec", "podSelector", "matchLabels"), w.podLabels), "the NetworkPolicy covers Luminate's pods")
		require.Equal(t, []any{"Ingress"}, get(np, "spec", "policyTypes"))
		open := map[int][]any{} // port -> the from of the rules opening it (nil: anyone)
		for _, rule := range list(get(np, "spec", "ingress")) {
			from := list(get(rule, "from"))
			for _, p := range list(get(rule, "ports")) {
				open[w.resolvePort(t, get(p, "port"))] = append(open[w.resolvePort(t, get(p, "port"))], any(from))
			}
		}
		require.Len(t, open, 2, "only the two ports are opened: %v", open)
		require.Equal(t, []any{[]any(nil)}, open[w.port], "the API is open to every client")
		require.Len(t, open[w.internal], 1)
		from := open[w.internal][0].([]any)
		require.Len(t, from, 1)
		require.NotNil(t, get(from[0], "namespaceSelector", "matchLabels"), "the internal port is open to a namespace that is selected: %v", from)
	})
	t.Run("secret placeholders cannot be used", func(t *testing.T) {
		if p, ok := cfg["auth.jwt.hmac-secret-file"]; ok {
			require.Less(t, len(strings.TrimSpace(string(w.mountedFile(t, p)))), 32,
				"the shipped HMAC secret is a placeholder Luminate refuses (under 32 bytes)")
		}
	})

	hpas := ofKind(objs, "HorizontalPodAutoscaler")
	pdbs := ofKind(objs, "PodDisruptionBudget")
	require.Len(t, pdbs, 1, "a PodDisruptionBudget")
	require.True(t, matches(get(pdbs[0], "spec", "selector", "matchLabels"), w.podLabels), "the PDB covers Luminate's pods")

	switch overlay {
	case "clickhouse":
		t.Run("clickhouse: scaled out", func(t *testing.T) {
			require.Equal(t, "clickhouse", cfg["storage.backend"])
			require.Equal(t, 3, spec["replicas"])
			require.Equal(t, "RollingUpdate", get(spec, "strategy", "type"))
			require.Contains(t, []any{0, "0%"}, get(spec, "strategy", "rollingUpdate", "maxUnavailable"))
			require.Empty(t, ofKind(objs, "PersistentVolumeClaim"), "stateless")

			require.Len(t, hpas, 1)
			hpa := hpas[0]
			require.Equal(t, "autoscaling/v2", hpa["apiVersion"])
			require.Equal(t, "Deployment", get(hpa, "spec", "scaleTargetRef", "kind"))
			require.Equal(t, name(w.deployment), get(hpa, "spec", "scaleTargetRef", "name"))
			require.Equal(t, 3, get(hpa, "spec", "minReplicas"))
			require.Equal(t, 10, get(hpa, "spec", "maxReplicas"))
			require.Equal(t, spec["replicas"], get(hpa, "spec", "minReplicas"), "the Deployment starts at the autoscaler's minimum")
			targets := map[string]any{}
			for _, m := range list(get(hpa, "spec", "metrics")) {
				require.Equal(t, "Resource", get(m, "type"))
				require.Equal(t, "Utilization", get(m, "resource", "target", "type"))
				targets[str(get(m, "resource", "name"))] = get(m, "resource", "target", "averageUtilization")
			}
			require.Equal(t, map[string]any{"cpu": 70, "memory": 80}, targets)

			// One pod at a time: at the minimum of 3, at least 2 stay.
			require.Equal(t, 1, get(pdbs[0], "spec", "maxUnavailable"))
		})
	case "badger":
		t.Run("badger: one pod on a volume", func(t *testing.T) {
			require.Equal(t, "badger", cfg["storage.backend"])
			require.Equal(t, 1, spec["replicas"])
			require.Equal(t, object{"type": "Recreate"}, spec["strategy"], "the old pod releases the store before the new one opens it")
			require.Empty(t, hpas, "no autoscaler for a single-node store")

			vol, _ := w.volumeFor(t, cfg["storage.badger.path"])
			claim := str(get(vol, "persistentVolumeClaim", "claimName"))
			require.NotEmpty(t, claim, "--storage.badger.path is on a PersistentVolumeClaim")
			pvc := w.object(t, "PersistentVolumeClaim", claim)
			require.Equal(t, []any{"ReadWriteOnce"}, get(pvc, "spec", "accessModes"))
			require.NotNil(t, get(pvc, "spec", "resources", "requests", "storage"))

			// The only pod is the whole store: evictions are refused.
			require.Equal(t, 1, get(pdbs[0], "spec", "minAvailable"))
			require.Nil(t, get(pdbs[0], "spec", "maxUnavailable"))
		})
	default:
		t.Fatalf("unknown overlay %s", overlay)
	}
}

func TestKubernetesManifests(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) { checkWorkload(t, loadOverlay(t, overlay), overlay) })
	}
	t.Run("every file is used and parses", func(t *testing.T) {
		used := map[string]bool{}
		require.NoError(t, filepath.WalkDir("kubernetes", func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
				return err
			}
			used[p] = true
			var k kustomization
			require.NoError(t, yaml.Unmarshal(readFile(t, p), &k))
			dir := filepath.Dir(p)
			for _, r := range k.Resources {
				used[filepath.Join(dir, r)] = true
			}
			for _, pe := range k.Patches {
				used[filepath.Join(dir, pe.Path)] = true
			}
			for _, g := range k.ConfigMapGenerator {
				for _, f := range g.Files {
					_, path, ok := strings.Cut(f, "=")
					if !ok {
						path = f
					}
					used[filepath.Join(dir, path)] = true
				}
			}
			return nil
		}))
		n := 0
		require.NoError(t, filepath.WalkDir("kubernetes", func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			require.True(t, used[p], "%s is used by a kustomization", p)
			docs, err := decodeAny(readFile(t, p))
			require.NoError(t, err, p)
			require.NotEmpty(t, docs, p)
			n++
			return nil
		}))
		require.GreaterOrEqual(t, n, 14)
	})
}

// pod recreates the container of a resolved overlay under a temporary
// directory: every ConfigMap and Secret volume as files, the other volumes
// as empty directories. secrets replaces Secret values (the operator's real
// ones for the shipped placeholders). It returns the container's arguments
// with $(VAR) expanded and paths translated, the config file rewritten the
// same way, and the root.
func (w workload) pod(t testing.TB, secrets map[string]string) ([]string, *rootfs) {
	t.Helper()
	root := newRootfs(t)
	volumes := map[string]object{}
	for _, v := range list(get(w.deployment, "spec", "template", "spec", "volumes")) {
		volumes[str(get(v, "name"))] = v.(object)
	}
	secretOf := func(sec object, key string) string {
		if v, ok := secrets[key]; ok {
			return v
		}
		return secretValue(t, sec, key)
	}
	for _, m := range list(w.container["volumeMounts"]) {
		dir := root.mount(t, str(get(m, "mountPath")))
		vol := volumes[str(get(m, "name"))]
		switch {
		case get(vol, "configMap") != nil:
			cm := w.object(t, "ConfigMap", str(get(vol, "configMap", "name")))
			for k, v := range get(cm, "data").(object) {
				writeFile(t, filepath.Join(dir, k), []byte(v.(string)), 0o644)
			}
		case get(vol, "secret") != nil:
			sec := w.object(t, "Secret", str(get(vol, "secret", "secretName")))
			for _, it := range list(get(vol, "secret", "items")) {
				writeFile(t, filepath.Join(dir, str(get(it, "path"))), []byte(secretOf(sec, str(get(it, "key")))), 0o400)
			}
		}
	}
	env := map[string]string{}
	for _, e := range list(w.container["env"]) {
		if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
			env[str(get(e, "name"))] = secretOf(w.object(t, "Secret", str(get(ref, "name"))), str(get(ref, "key")))
		} else {
			env[str(get(e, "name"))] = str(get(e, "value"))
		}
	}
	varRE := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var args []string
	for _, a := range stringList(t, w.container["args"]) {
		args = append(args, varRE.ReplaceAllStringFunc(a, func(m string) string {
			v, ok := env[varRE.FindStringSubmatch(m)[1]]
			require.True(t, ok, "%s names an environment variable of the container", m)
			return v
		}))
	}
	args = root.hostArgs(args)
	cfg, _ := flagValue(args, "config.file")
	root.hostConfig(t, cfg)
	return args, root
}

// closedDSN is a ClickHouse DSN nobody answers at.
func closedDSN(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return "clickhouse://luminate:x@" + addr + "/default"
}

// TestKubernetesConfigServes gives the files each overlay mounts to the
// real binary, with the container's own arguments: for Badger it serves
// (the probes' endpoints answer 200, a sample is written and read back);
// for ClickHouse it gets as far as opening the storage without a server,
// and serves against real ClickHouse servers (two shards; without Keeper,
// so the cluster name and replication are given on the command line).
func TestKubernetesConfigServes(t *testing.T) {
	probePaths := func(w workload) []string {
		var out []string
		for _, p := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
			if path := str(get(w.container, p, "httpGet", "path")); path != "" {
				out = append(out, path)
			}
		}
		return out
	}
	serve := func(t *testing.T, w workload, args []string, secretFile string, tenant string) {
		p := startLuminate(t, args...)
		p.waitReady()
		for _, path := range probePaths(w) {
			code, body := httpGet(t, p.url(path), "")
			require.Equal(t, http.StatusOK, code, "GET %s: %s", path, body)
		}
		// /metrics names every tenant: the ServiceMonitor's port serves it
		// without a token, the API port only to an operator.
		code, body := httpGet(t, p.internalURL(pathMetrics), "")
		require.Equal(t, http.StatusOK, code, "GET %s on the internal port: %s", pathMetrics, body)
		code, body = httpGet(t, p.url(pathMetrics), "")
		require.Equal(t, http.StatusUnauthorized, code, "GET %s on the API port without a token: %s", pathMetrics, body)
		code, body = httpGet(t, p.url(pathMetrics), mintToken(t, secretFile, "prometheus", "operator"))
		require.Equal(t, http.StatusOK, code, "GET %s on the API port with an operator token: %s", pathMetrics, body)
		writeAndRead(t, p, secretFile, tenant, "deploy_kubernetes_"+strings.ReplaceAll(tenant, "-", "_"), 7)
		p.stop()
	}

	t.Run("badger", func(t *testing.T) {
		w := findWorkload(t, loadOverlay(t, "badger"))
		args, root := w.pod(t, map[string]string{"hmac.secret": newHMACSecret(t)})
		secret, _ := root.host(configValues(t, w.config)["auth.jwt.hmac-secret-file"])
		serve(t, w, args, secret, "k8s-badger")
		for _, sub := range []string{"badger", "wal"} {
			require.DirExists(t, filepath.Join(root.dir, configValues(t, w.config)["storage.badger.path"], sub), "the store is on the volume")
		}
	})

	t.Run("placeholder secret is refused", func(t *testing.T) {
		w := findWorkload(t, loadOverlay(t, "badger"))
		args, _ := w.pod(t, nil) // the Secret as shipped
		code, out := runLuminate(t, append(args, "--http.listen-address=127.0.0.1:0")...)
		require.NotEqual(t, 0, code)
		require.Contains(t, out, "need at least 32")
	})

	t.Run("clickhouse without a server", func(t *testing.T) {
		w := findWorkload(t, loadOverlay(t, "clickhouse"))
		// The shipped DSN is a valid DSN for the cluster's hosts.
		sec := w.object(t, "Secret", "luminate")
		opts, err := ch.ParseDSN(secretValue(t, sec, "clickhouse-dsn"))
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"ch-s1-r1:9000", "ch-s2-r1:9000"}, opts.Addr)

		args, _ := w.pod(t, map[string]string{"hmac.secret": newHMACSecret(t), "clickhouse-dsn": closedDSN(t)})
		code, out := runLuminate(t, args...)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "luminate serve: open storage:", "flags, config file, key and limits accepted; only the storage is missing")
	})

	t.Run("clickhouse", func(t *testing.T) {
		w := findWorkload(t, loadOverlay(t, "clickhouse"))
		servers := chtest.NewCluster(t, 2)
		args, root := w.pod(t, map[string]string{"hmac.secret": newHMACSecret(t), "clickhouse-dsn": servers[0].DSN()})
		args = append(args,
			"--storage.clickhouse.cluster="+chtest.ClusterName,
			"--storage.clickhouse.replicated=false",
			"--storage.clickhouse.cluster-ddl=each-node")
		secret, _ := root.host(configValues(t, w.config)["auth.jwt.hmac-secret-file"])
		serve(t, w, args, secret, "k8s-clickhouse")
	})
}

// TestClickHouseClusterNames checks that the configs the manifests mount
// name the cluster deploy/clickhouse defines.
func TestClickHouseClusterNames(t *testing.T) {
	cluster := clickhouseCluster(t)
	w := findWorkload(t, loadOverlay(t, "clickhouse"))
	require.Equal(t, cluster.name, configValues(t, w.config)["storage.clickhouse.cluster"])
	require.Equal(t, cluster.name, configValues(t, readFile(t, "compose/luminate.yml"))["storage.clickhouse.cluster"])
}
