//go:build unix

package tenancy_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func TestRunReloadsOnSIGHUP(t *testing.T) {
	// Subscribe first and for the rest of the test binary's life, so that
	// a SIGHUP delivered before Run subscribes or after it stopped (signals
	// arrive asynchronously) cannot terminate the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)

	env := newLimits(t, tenancy.DefaultTenantLimits(), "overrides:\n  acme: {max_active_series: 10}\n")
	tenancy.SetLimitsPollInterval(env.l, time.Hour) // only the signal can reload
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- env.l.Run(ctx) }()

	replaceFile(t, env.file, "overrides:\n  acme: {max_active_series: 777}\n")
	require.Eventually(t, func() bool {
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		return env.l.MaxActiveSeries("acme") == 777
	}, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, env.logs.String(), "SIGHUP")

	cancel()
	require.NoError(t, <-done)
}
