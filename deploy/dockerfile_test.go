package deploy

// Tests of deploy/Dockerfile: its stages and instructions, and the
// image's default command served for real.

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
