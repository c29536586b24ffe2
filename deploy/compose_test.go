package deploy

// Tests of deploy/docker-compose.yml and the files it mounts.

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
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
)

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
