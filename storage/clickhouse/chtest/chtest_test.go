package chtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/storage/clickhouse/chtest"
)

func query(t *testing.T, dsn, q string) string {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	require.NoError(t, err)
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out string
	require.NoError(t, conn.QueryRow(ctx, q).Scan(&out))
	return out
}

func TestStartStopStart(t *testing.T) {
	s := chtest.New(t)
	require.NotEmpty(t, query(t, s.DSN(), "SELECT version()"))
	require.NoError(t, func() error {
		opts, _ := clickhouse.ParseDSN(s.DSN())
		conn, err := clickhouse.Open(opts)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Exec(t.Context(), "CREATE TABLE kept (x UInt8) ENGINE = TinyLog")
	}())
	s.Stop()
	opts, err := clickhouse.ParseDSN(s.DSN())
	require.NoError(t, err)
	opts.DialTimeout = time.Second
	conn, err := clickhouse.Open(opts)
	require.NoError(t, err)
	require.Error(t, conn.Ping(t.Context()), "server stopped but answers")
	conn.Close()
	s.Start()
	require.Equal(t, "1", query(t, s.DSN(), "SELECT toString(count()) FROM system.tables WHERE name = 'kept'"), "data survives a restart")
}

func TestClusterKnowsShards(t *testing.T) {
	ss := chtest.NewCluster(t, 2)
	for _, s := range ss {
		require.Equal(t, "2", query(t, s.DSN(), "SELECT toString(count()) FROM system.clusters WHERE cluster = '"+chtest.ClusterName+"'"))
	}
	require.Equal(t, "2", query(t, ss[0].DSN(), "SELECT toString(count()) FROM remote('"+ss[0].Addr()+","+ss[1].Addr()+"', system.one)"))
}
