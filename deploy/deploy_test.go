package deploy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/luminate-io/luminate/grafana"
	"github.com/luminate-io/luminate/internal/proctest"
	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

// Luminate's real endpoints that probes and health checks may use (the
// live tests also request each one from a running server).
const (
	pathHealthy = "/-/healthy"
	pathReady   = "/-/ready"
	pathMetrics = "/metrics"
)

// overlays are the kustomize overlays under kubernetes/overlays.
var overlays = []string{"clickhouse", "badger"}

// ---------------------------------------------------------------------------
// Dockerfile

// dockerInstr is one instruction of a Dockerfile, continuation lines joined.
type dockerInstr struct {
	cmd  string // upper case
	args string
	line int
}

type dockerStage struct {
	from  string // image, build arguments substituted
	name  string // AS name
	instr []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages. Global ARGs (before the
// first FROM) are substituted in FROM lines with their defaults.
func parseDockerfile(t testing.TB, data []byte) []dockerStage {
	t.Helper()
	var instrs []dockerInstr
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments, also inside continuations, as Docker does
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	require.Zero(t, cur.Len(), "Dockerfile ends in a continuation")

	globalArgs := map[string]string{}
	var stages []dockerStage
	for _, in := range instrs {
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = v
		case in.cmd == "FROM":
			fields := strings.Fields(os.Expand(in.args, func(k string) string { return globalArgs[k] }))
			s := dockerStage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			}
			stages = append(stages, s)
		default:
			require.NotEmpty(t, stages, "line %d: %s before FROM", in.line, in.cmd)
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
		}
	}
	return stages
}

func (s dockerStage) all(cmd string) []dockerInstr {
	var out []dockerInstr
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes an exec-form (JSON array) argument list; a shell form
// cannot run in an image without a shell.
func execForm(t testing.TB, in dockerInstr, s string) []string {
	t.Helper()
	var argv []string
	require.NoError(t, json.Unmarshal([]byte(s), &argv), "line %d: %s must be in exec form (a JSON array): there is no shell in the image", in.line, in.cmd)
	require.NotEmpty(t, argv)
	return argv
}

// dockerImage is what the tests need to know of deploy/Dockerfile's final
// image.
type dockerImage struct {
	uid         int
	entrypoint  []string
	cmd         []string
	healthcheck []string
	expose      []string
	volumes     []string
	files       map[string]bool // paths COPY puts into the image
}

func loadDockerfile(t testing.TB) (build dockerStage, final dockerImage) {
	t.Helper()
	stages := parseDockerfile(t, readFile(t, "Dockerfile"))
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage build")
	last := stages[len(stages)-1]

	// The build stage: the stage the final image copies luminate from.
	final.files = map[string]bool{}
	for _, in := range last.all("COPY") {
		fields := strings.Fields(in.args)
		from := ""
		var paths []string
		for _, f := range fields {
			if v, ok := strings.CutPrefix(f, "--from="); ok {
				from = v
			} else if !strings.HasPrefix(f, "--") {
				paths = append(paths, f)
			}
		}
		require.GreaterOrEqual(t, len(paths), 2, "line %d", in.line)
		dest := paths[len(paths)-1]
		final.files[dest] = true
		if strings.HasSuffix(dest, "/luminate") {
			for _, s := range stages {
				if s.name == from {
					build = s
				}
			}
		}
	}
	require.NotEmpty(t, build.name, "the final stage copies luminate from a build stage")

	for _, in := range last.all("USER") {
		user, _, _ := strings.Cut(in.args, ":")
		uid, err := strconv.Atoi(user)
		require.NoError(t, err, "line %d: USER must be numeric, so that Kubernetes' runAsNonRoot can verify it", in.line)
		final.uid = uid
	}
	for _, in := range last.all("ENTRYPOINT") {
		final.entrypoint = execForm(t, in, in.args)
	}
	for _, in := range last.all("CMD") {
		final.cmd = execForm(t, in, in.args)
	}
	for _, in := range last.all("HEALTHCHECK") {
		_, argv, ok := strings.Cut(in.args, " CMD ")
		require.True(t, ok, "line %d: HEALTHCHECK [options] CMD [...]", in.line)
		final.healthcheck = execForm(t, in, strings.TrimSpace(argv))
	}
	for _, in := range last.all("EXPOSE") {
		final.expose = append(final.expose, strings.Fields(in.args)...)
	}
	for _, in := range last.all("VOLUME") {
		final.volumes = append(final.volumes, strings.Fields(in.args)...)
	}
	return build, final
}

// makefileLDFlagVars are the -X variables of the Makefile's build target.
func makefileLDFlagVars(t testing.TB) []string {
	t.Helper()
	mk := string(readFile(t, filepath.Join(repoRoot, "Makefile")))
	vars := regexp.MustCompile(`-X \$\(VERSION_PKG\)\.([A-Za-z]+)=`).FindAllStringSubmatch(mk, -1)
	require.NotEmpty(t, vars, "the Makefile's LDFLAGS")
	var out []string
	for _, v := range vars {
		out = append(out, v[1])
	}
	return out
}

func TestDockerfile(t *testing.T) {
	build, img := loadDockerfile(t)

	t.Run("build stage", func(t *testing.T) {
		require.True(t, strings.HasPrefix(build.from, "golang:1.26"), "builder image %q", build.from)
		var goBuild string
		for _, in := range build.all("RUN") {
			if strings.Contains(in.args, "go build") {
				goBuild = in.args
			}
		}
		require.NotEmpty(t, goBuild, "a RUN go build")
		require.Contains(t, goBuild, "CGO_ENABLED=0", "a static binary")
		require.Contains(t, goBuild, "./cmd/luminate")
		for _, v := range makefileLDFlagVars(t) {
			require.Contains(t, goBuild, "-X github.com/prometheus/common/version."+v+"=", "the same version information as make build")
		}
	})

	t.Run("final stage", func(t *testing.T) {
		require.Positive(t, img.uid, "USER is not root")
		require.Equal(t, []string{"9201/tcp"}, normalizePorts(img.expose))
		require.Equal(t, []string{"/data"}, img.volumes)
		require.Len(t, img.entrypoint, 1)
		require.True(t, img.files[img.entrypoint[0]], "ENTRYPOINT %s is copied into the image", img.entrypoint[0])
		require.Equal(t, "serve", img.cmd[0])
		require.Contains(t, img.cmd, "--storage.badger.path=/data", "the default command stores under the volume")
	})

	t.Run("health check", func(t *testing.T) {
		require.NotEmpty(t, img.healthcheck, "a HEALTHCHECK")
		require.True(t, img.files[img.healthcheck[0]], "the health check's program %s is copied into the image", img.healthcheck[0])
		u := healthcheckURL(t, img.healthcheck)
		require.Equal(t, pathHealthy, u.Path)
		require.Equal(t, []string{u.Port() + "/tcp"}, normalizePorts(img.expose), "the health check asks the exposed port")
	})
}

func normalizePorts(ports []string) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		out[i] = p
	}
	return out
}

func healthcheckURL(t testing.TB, argv []string) *url.URL {
	t.Helper()
	for _, a := range argv {
		if strings.HasPrefix(a, "http://") {
			u, err := url.Parse(a)
			require.NoError(t, err)
			return u
		}
	}
	t.Fatalf("no URL in the health check %v", argv)
	return nil
}

// TestDockerfileDefaultCommand runs the image's default command with the
// real binary: /data and the secret's directory are mounts, as in
// `docker run -v luminate-data:/data -v ./hmac.secret:/run/secrets/...`.
// When busybox is installed, the HEALTHCHECK command runs too (with the
// host's busybox for the image's, and the server's port).
func TestDockerfileDefaultCommand(t *testing.T) {
	_, img := loadDockerfile(t)
	root := newRootfs(t)
	for _, v := range img.volumes {
		root.mount(t, v)
	}
	secret, ok := flagValue(img.cmd, "auth.jwt.hmac-secret-file")
	require.True(t, ok, "the default command names the HMAC secret file")
	secretHost := filepath.Join(root.mount(t, filepath.Dir(secret)), filepath.Base(secret))
	writeFile(t, secretHost, []byte(newHMACSecret(t)+"\n"), 0o400)

	p := startLuminate(t, root.hostArgs(img.cmd)...)
	p.waitReady()
	writeAndRead(t, p, secretHost, "docker", "deploy_docker_default", 1)

	busybox, err := exec.LookPath("busybox")
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatal("busybox is not installed: scripts/test-deps.sh installs busybox-static")
	}
	runCheck := func() error {
		u := healthcheckURL(t, img.healthcheck)
		argv := slices.Clone(img.healthcheck)
		for i, a := range argv {
			if a == u.String() {
				u.Host = p.addr
				argv[i] = u.String()
			}
		}
		return exec.CommandContext(t.Context(), busybox, argv[1:]...).Run()
	}
	if err == nil {
		require.NoError(t, runCheck(), "the health check passes on a running server")
	}
	p.stop()
	if err == nil {
		require.Error(t, runCheck(), "the health check fails once the server is gone")
	} else {
		t.Log("busybox not installed: the HEALTHCHECK command itself was not run")
	}
	for _, sub := range []string{"badger", "wal"} {
		st, err := os.Stat(filepath.Join(root.dir, "data", sub))
		require.NoError(t, err, "the store is in the volume")
		require.True(t, st.IsDir())
	}
}

// ---------------------------------------------------------------------------
// Kubernetes

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

// ---------------------------------------------------------------------------
// deploy/clickhouse, as far as the compose stack relies on it

type chCluster struct {
	name   string
	shards [][]string // hosts of each shard's replicas, "host:port"
}

// clickhouseCluster reads the cluster of config.d/luminate-cluster.xml.
func clickhouseCluster(t testing.TB) chCluster {
	t.Helper()
	var doc struct {
		RemoteServers struct {
			Clusters []struct {
				XMLName xml.Name
				Shards  []struct {
					Replicas []struct {
						Host string `xml:"host"`
						Port string `xml:"port"`
					} `xml:"replica"`
				} `xml:"shard"`
			} `xml:",any"`
		} `xml:"remote_servers"`
	}
	require.NoError(t, xml.Unmarshal(readFile(t, "clickhouse/config.d/luminate-cluster.xml"), &doc))
	require.Len(t, doc.RemoteServers.Clusters, 1)
	c := doc.RemoteServers.Clusters[0]
	out := chCluster{name: c.XMLName.Local}
	for _, s := range c.Shards {
		var hosts []string
		for _, r := range s.Replicas {
			hosts = append(hosts, net.JoinHostPort(r.Host, r.Port))
		}
		out.shards = append(out.shards, hosts)
	}
	return out
}

type chNode struct {
	shard, replica string
	keeperID       string
}

func clickhouseNode(t testing.TB, path string) chNode {
	t.Helper()
	var doc struct {
		Macros struct {
			Shard   string `xml:"shard"`
			Replica string `xml:"replica"`
		} `xml:"macros"`
		KeeperServer struct {
			ServerID string `xml:"server_id"`
		} `xml:"keeper_server"`
	}
	require.NoError(t, xml.Unmarshal(readFile(t, path), &doc), path)
	return chNode{shard: doc.Macros.Shard, replica: doc.Macros.Replica, keeperID: doc.KeeperServer.ServerID}
}

type keeperConfig struct {
	port    string
	servers map[string]string // hostname -> raft id
}

func clickhouseKeeper(t testing.TB) keeperConfig {
	t.Helper()
	var doc struct {
		Keeper struct {
			TCPPort string `xml:"tcp_port"`
			Servers []struct {
				ID       string `xml:"id"`
				Hostname string `xml:"hostname"`
			} `xml:"raft_configuration>server"`
		} `xml:"keeper_server"`
	}
	require.NoError(t, xml.Unmarshal(readFile(t, "clickhouse/config.d/keeper.xml"), &doc))
	k := keeperConfig{port: doc.Keeper.TCPPort, servers: map[string]string{}}
	for _, s := range doc.Keeper.Servers {
		k.servers[s.Hostname] = s.ID
	}
	return k
}

func clickhouseKeeperClients(t testing.TB) []string {
	t.Helper()
	var doc struct {
		Nodes []struct {
			Host string `xml:"host"`
			Port string `xml:"port"`
		} `xml:"zookeeper>node"`
	}
	require.NoError(t, xml.Unmarshal(readFile(t, "clickhouse/config.d/keeper-client.xml"), &doc))
	var out []string
	for _, n := range doc.Nodes {
		out = append(out, net.JoinHostPort(n.Host, n.Port))
	}
	return out
}

func clickhouseUserPasswordHash(t testing.TB, user string) string {
	t.Helper()
	var doc struct {
		Users struct {
			Users []struct {
				XMLName xml.Name
				Hash    string `xml:"password_sha256_hex"`
			} `xml:",any"`
		} `xml:"users"`
	}
	require.NoError(t, xml.Unmarshal(readFile(t, "clickhouse/users.d/luminate.xml"), &doc))
	for _, u := range doc.Users.Users {
		if u.XMLName.Local == user {
			return u.Hash
		}
	}
	t.Fatalf("user %s is not in clickhouse/users.d/luminate.xml", user)
	return ""
}

// ---------------------------------------------------------------------------
// Docker Compose

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Hostname    string            `yaml:"hostname"`
	User        string            `yaml:"user"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// composeMount is one entry of a service's volumes.
type composeMount struct {
	source   string // a named volume, or a path relative to the compose file
	target   string
	bind     bool
	readOnly bool
}

func (s composeService) mounts(t testing.TB) []composeMount {
	t.Helper()
	var out []composeMount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		require.GreaterOrEqual(t, len(parts), 2, "volume %q", v)
		m := composeMount{source: parts[0], target: parts[1]}
		m.bind = strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/")
		m.readOnly = len(parts) == 3 && parts[2] == "ro"
		out = append(out, m)
	}
	return out
}

// mountOf returns the mount holding the container path p.
func (s composeService) mountOf(t testing.TB, p string) composeMount {
	t.Helper()
	var best composeMount
	for _, m := range s.mounts(t) {
		if (p == m.target || strings.HasPrefix(p, m.target+"/")) && len(m.target) > len(best.target) {
			best = m
		}
	}
	require.NotEmpty(t, best.target, "%s is in no mount", p)
	return best
}

// bindSource returns the file a bind mount of the container path p reads.
func (s composeService) bindSource(t testing.TB, p string) string {
	t.Helper()
	m := s.mountOf(t, p)
	require.True(t, m.bind, "%s is a bind mount", p)
	return filepath.Join(m.source, strings.TrimPrefix(p, m.target))
}

func loadCompose(t testing.TB) composeFile {
	t.Helper()
	var c composeFile
	require.NoError(t, yaml.Unmarshal(readFile(t, "docker-compose.yml"), &c))
	return c
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	cluster := clickhouseCluster(t)

	t.Run("bind mounts exist", func(t *testing.T) {
		for n, s := range c.Services {
			for _, m := range s.mounts(t) {
				if m.bind {
					_, err := os.Stat(m.source)
					require.NoError(t, err, "service %s mounts %s", n, m.source)
				} else {
					require.Contains(t, c.Volumes, m.source, "service %s: named volume %s is declared", n, m.source)
				}
			}
		}
	})

	// The ClickHouse servers: 2 shards x 2 replicas, as the cluster says.
	chNodes := map[string]chNode{}
	var keepers []string
	t.Run("clickhouse cluster", func(t *testing.T) {
		for n, s := range c.Services {
			if !strings.HasPrefix(s.Image, "clickhouse/clickhouse-server:") {
				continue
			}
			node := clickhouseNode(t, s.bindSource(t, "/etc/clickhouse-server/config.d/node.xml"))
			require.Equal(t, n, node.replica, "the replica macro is the service's name")
			require.Equal(t, n, s.Hostname)
			require.Equal(t, filepath.Join("clickhouse", "config.d", "luminate-cluster.xml"),
				filepath.Clean(s.bindSource(t, "/etc/clickhouse-server/config.d/luminate-cluster.xml")))
			require.Equal(t, filepath.Join("clickhouse", "config.d", "keeper-client.xml"),
				filepath.Clean(s.bindSource(t, "/etc/clickhouse-server/config.d/keeper-client.xml")))
			require.Equal(t, filepath.Join("clickhouse", "users.d", "luminate.xml"),
				filepath.Clean(s.bindSource(t, "/etc/clickhouse-server/users.d/luminate.xml")))
			require.NotNil(t, s.Healthcheck, "%s has a health check (Luminate waits for it)", n)
			chNodes[n] = node
			for _, m := range s.mounts(t) {
				if m.target == "/etc/clickhouse-server/config.d/keeper.xml" {
					keepers = append(keepers, n)
				}
			}
		}
		require.Len(t, chNodes, 4, "four ClickHouse servers")
		shards := map[string][]string{}
		for n, node := range chNodes {
			shards[node.shard] = append(shards[node.shard], n+":9000")
		}
		require.Len(t, shards, 2, "two shards")
		require.Len(t, cluster.shards, 2, "the cluster has two shards")
		for _, hosts := range cluster.shards {
			require.Len(t, hosts, 2, "two replicas per shard")
			shard := chNodes[strings.Split(hosts[0], ":")[0]].shard
			require.ElementsMatch(t, shards[shard], hosts, "the cluster's shard is the services with shard macro %s", shard)
		}
	})

	t.Run("keeper", func(t *testing.T) {
		k := clickhouseKeeper(t)
		require.GreaterOrEqual(t, len(keepers), 3, "a Keeper quorum")
		require.Equal(t, 1, len(keepers)%2, "an odd number of Keeper servers")
		require.Len(t, k.servers, len(keepers))
		var clients []string
		for _, n := range keepers {
			id, ok := k.servers[n]
			require.True(t, ok, "%s runs Keeper and is in its raft configuration", n)
			require.Equal(t, id, chNodes[n].keeperID, "%s's server_id", n)
			clients = append(clients, net.JoinHostPort(n, k.port))
		}
		require.ElementsMatch(t, clients, clickhouseKeeperClients(t), "every node reaches the Keeper servers")
	})

	lum, ok := c.Services["luminate"]
	require.True(t, ok, "a luminate service")
	initSvc, ok := c.Services["luminate-init"]
	require.True(t, ok, "a luminate-init service")
	cfgPath, ok := flagValue(lum.Command, "config.file")
	require.True(t, ok, "luminate runs with --config.file")
	cfgData := readFile(t, lum.bindSource(t, cfgPath))
	cfg := configValues(t, cfgData)

	t.Run("luminate", func(t *testing.T) {
		require.NotNil(t, lum.Build)
		require.Equal(t, "deploy/Dockerfile", lum.Build.Dockerfile)
		require.Equal(t, "..", lum.Build.Context, "the build context is the repository")
		require.Equal(t, "serve", lum.Command[0])
		for n := range chNodes {
			require.Equal(t, "service_healthy", lum.DependsOn[n].Condition, "luminate waits for %s", n)
		}
		require.Equal(t, "service_completed_successfully", lum.DependsOn["luminate-init"].Condition)

		require.Equal(t, "clickhouse", cfg["storage.backend"])
		require.Equal(t, cluster.name, cfg["storage.clickhouse.cluster"])
		opts, err := ch.ParseDSN(cfg["storage.clickhouse.dsn"])
		require.NoError(t, err)
		for _, addr := range opts.Addr {
			host, port, err := net.SplitHostPort(addr)
			require.NoError(t, err)
			require.Contains(t, chNodes, host, "the DSN names ClickHouse services")
			require.Equal(t, "9000", port)
		}
		sum := sha256.Sum256([]byte(opts.Auth.Password))
		require.Equal(t, clickhouseUserPasswordHash(t, opts.Auth.Username), hex.EncodeToString(sum[:]),
			"the DSN's password is the one deploy/clickhouse/users.d sets for its user")

		// The HMAC secret comes from the volume luminate-init writes.
		key := lum.mountOf(t, cfg["auth.jwt.hmac-secret-file"])
		require.False(t, key.bind)
		initKey := initSvc.mountOf(t, cfg["auth.jwt.hmac-secret-file"])
		require.Equal(t, key.source, initKey.source, "luminate-init writes the key luminate reads")
		require.Contains(t, string(readFile(t, initSvc.bindSource(t, initScript(t, initSvc)))), "key="+cfg["auth.jwt.hmac-secret-file"])
	})

	mints := composeMints(t, initSvc)
	t.Run("prometheus", func(t *testing.T) {
		prom := c.Services["prometheus"]
		require.Equal(t, "service_healthy", prom.DependsOn["luminate"].Condition)
		promCfgPath, ok := flagValue(prom.Command, "config.file")
		require.True(t, ok)
		var pc struct {
			RuleFiles     []string `yaml:"rule_files"`
			ScrapeConfigs []struct {
				JobName       string `yaml:"job_name"`
				MetricsPath   string `yaml:"metrics_path"`
				Authorization struct {
					Type            string `yaml:"type"`
					CredentialsFile string `yaml:"credentials_file"`
				} `yaml:"authorization"`
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
			RemoteWrite []remoteEndpoint `yaml:"remote_write"`
			RemoteRead  []remoteEndpoint `yaml:"remote_read"`
		}
		require.NoError(t, yaml.Unmarshal(readFile(t, prom.bindSource(t, promCfgPath)), &pc))
		luminateAddr := net.JoinHostPort("luminate", strconv.Itoa(listenPort(t, cfgData)))

		require.Len(t, pc.RemoteWrite, 1)
		require.Len(t, pc.RemoteRead, 1)
		for _, ep := range []struct {
			remoteEndpoint
			path, scope string
		}{{pc.RemoteWrite[0], "/api/v1/write", "metrics:write"}, {pc.RemoteRead[0], "/api/v1/read", "metrics:read"}} {
			u, err := url.Parse(ep.URL)
			require.NoError(t, err)
			require.Equal(t, luminateAddr, u.Host)
			require.Equal(t, ep.path, u.Path)
			require.Equal(t, "Bearer", ep.Authorization.Type)
			tok := ep.Authorization.CredentialsFile
			m := prom.mountOf(t, tok)
			require.Equal(t, initSvc.mountOf(t, "/run/luminate/tokens").source, m.source, "the token volume luminate-init writes")
			scopes, ok := mints[filepath.Base(tok)]
			require.True(t, ok, "luminate-init mints %s", filepath.Base(tok))
			require.Contains(t, strings.Split(scopes, ","), ep.scope)
		}

		scraped := false
		for _, sc := range pc.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				if slices.Contains(st.Targets, luminateAddr) && (sc.MetricsPath == "" || sc.MetricsPath == pathMetrics) {
					scraped = true
					// /metrics names every tenant: the scrape sends a token
					// with the operator scope.
					require.Equal(t, "Bearer", sc.Authorization.Type)
					tok := sc.Authorization.CredentialsFile
					require.Equal(t, initSvc.mountOf(t, "/run/luminate/tokens").source, prom.mountOf(t, tok).source, "the token volume luminate-init writes")
					scopes, ok := mints[filepath.Base(tok)]
					require.True(t, ok, "luminate-init mints %s", filepath.Base(tok))
					require.Contains(t, strings.Split(scopes, ","), "operator")
				}
			}
		}
		require.True(t, scraped, "Prometheus scrapes Luminate's /metrics")
		require.Len(t, pc.RuleFiles, 1)
		require.Equal(t, filepath.Join("prometheus", "luminate-rules.yml"), filepath.Clean(prom.bindSource(t, pc.RuleFiles[0])))
	})

	t.Run("grafana", func(t *testing.T) {
		g := c.Services["grafana"]
		require.Equal(t, grafana.DefaultURL, g.Environment[grafana.EnvURL])
		require.Equal(t, filepath.Join("..", "grafana", "provisioning"), filepath.Clean(g.bindSource(t, grafana.ProvisioningDir)))
		require.Equal(t, filepath.Join("..", "grafana", "dashboards"), filepath.Clean(g.bindSource(t, grafana.DashboardsDir)))
		// The token: LUMINATE_TOKEN is set from a file minted with metrics:read.
		// Compose turns $$ into $ when it reads the file.
		entry := strings.ReplaceAll(strings.Join(g.Entrypoint, " "), "$$", "$")
		m := regexp.MustCompile(grafana.EnvToken + `="\$\(cat ([^)]+)\)"`).FindStringSubmatch(entry)
		require.NotNil(t, m, "the entrypoint sets %s from a token file: %s", grafana.EnvToken, entry)
		require.Equal(t, initSvc.mountOf(t, "/run/luminate/tokens").source, g.mountOf(t, m[1]).source)
		scopes, ok := mints[filepath.Base(m[1])]
		require.True(t, ok, "luminate-init mints %s", filepath.Base(m[1]))
		require.Equal(t, "metrics:read", scopes, "Grafana only reads")
		require.Contains(t, entry, "exec /run.sh", "then starts Grafana as its image does")
	})
}

type remoteEndpoint struct {
	URL           string `yaml:"url"`
	Authorization struct {
		Type            string `yaml:"type"`
		CredentialsFile string `yaml:"credentials_file"`
	} `yaml:"authorization"`
}

// initScript returns the container path of luminate-init's script.
func initScript(t testing.TB, svc composeService) string {
	t.Helper()
	require.Equal(t, []string{"/usr/local/bin/busybox", "sh"}, svc.Entrypoint[:2], "run by the image's busybox")
	return svc.Entrypoint[2]
}

// composeMints returns the tokens luminate-init mints: file name -> scopes.
func composeMints(t testing.TB, svc composeService) map[string]string {
	t.Helper()
	script := string(readFile(t, svc.bindSource(t, initScript(t, svc))))
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^mint ([a-z.]+) ([a-z:,]+)$`).FindAllStringSubmatch(script, -1) {
		out[m[1]] = m[2]
	}
	require.NotEmpty(t, out, "luminate-init mints tokens")
	return out
}

// TestComposeConfigs gives the compose stack's Luminate config to the real
// binary (it must get as far as opening the storage: flags, file and key
// accepted, no ClickHouse here) and its Prometheus config to promtool.
func TestComposeConfigs(t *testing.T) {
	c := loadCompose(t)

	t.Run("luminate", func(t *testing.T) {
		lum := c.Services["luminate"]
		root := newRootfs(t)
		for _, m := range lum.mounts(t) {
			dir := root.mount(t, m.target)
			if m.bind {
				require.NoError(t, os.RemoveAll(dir))
				writeFile(t, dir, readFile(t, m.source), 0o644)
			}
		}
		cfgPath, _ := flagValue(lum.Command, "config.file")
		hostCfg, _ := root.host(cfgPath)
		key, ok := root.host(configValues(t, readFile(t, hostCfg))["auth.jwt.hmac-secret-file"])
		require.True(t, ok, "the HMAC secret is in a mounted volume")
		root.hostConfig(t, hostCfg)
		writeFile(t, key, []byte(newHMACSecret(t)), 0o400)
		args := append(root.hostArgs(lum.Command), "--storage.clickhouse.dsn="+closedDSN(t))
		code, out := runLuminate(t, args...)
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "luminate serve: open storage:")
	})

	t.Run("prometheus", func(t *testing.T) {
		promtool := proctest.Tool(t, "promtool", proctest.InstallPrometheus)
		prom := c.Services["prometheus"]
		root := newRootfs(t)
		for _, m := range prom.mounts(t) {
			dir := root.mount(t, m.target)
			if m.bind {
				require.NoError(t, os.RemoveAll(dir))
				writeFile(t, dir, readFile(t, m.source), 0o644)
			}
		}
		cfgPath, _ := flagValue(prom.Command, "config.file")
		hostCfg, _ := root.host(cfgPath)
		var pc struct {
			RemoteWrite   []remoteEndpoint `yaml:"remote_write"`
			RemoteRead    []remoteEndpoint `yaml:"remote_read"`
			ScrapeConfigs []remoteEndpoint `yaml:"scrape_configs"`
		}
		require.NoError(t, yaml.Unmarshal(readFile(t, hostCfg), &pc))
		for _, ep := range slices.Concat(pc.RemoteWrite, pc.RemoteRead, pc.ScrapeConfigs) {
			if ep.Authorization.CredentialsFile == "" {
				continue // a scrape without a token
			}
			tok, ok := root.host(ep.Authorization.CredentialsFile)
			require.True(t, ok, "%s is mounted", ep.Authorization.CredentialsFile)
			writeFile(t, tok, []byte("token\n"), 0o444)
		}
		root.hostConfig(t, hostCfg)
		out, err := exec.Command(promtool, "check", "config", hostCfg).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "SUCCESS: 1 rule files found", "the rules are loaded too")
	})
}
