package deploy

// Tests of deploy/clickhouse, as far as the compose stack and the
// Kubernetes overlay rely on it: the cluster, its nodes, Keeper and the
// luminate user.

import (
	"encoding/xml"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

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
