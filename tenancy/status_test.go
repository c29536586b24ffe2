package tenancy_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func TestVerifierKeyStatus(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "hmac.secret")
	_, err := tenancy.EnsureDevSecret(secret)
	require.NoError(t, err)
	v, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: secret}, nil, nil)
	require.NoError(t, err)
	st := v.KeyStatus()
	require.False(t, st.Disabled)
	require.Equal(t, 1, st.Keys)
	require.Contains(t, st.Algorithms, "HS256")

	v, err = tenancy.NewVerifier(tenancy.AuthConfig{Disabled: true}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, tenancy.KeyStatus{Disabled: true}, v.KeyStatus())
}

func TestLimitsLastReload(t *testing.T) {
	l, err := tenancy.NewLimits(tenancy.DefaultLimitsConfig(), nil, nil)
	require.NoError(t, err)
	require.Equal(t, tenancy.ReloadStatus{}, l.LastReload(), "no overrides file, nothing loaded")

	file := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(file, []byte("overrides:\n  a: {ingestion_rate: 10}\n  b: {ingestion_rate: 20}\n"), 0o600))
	cfg := tenancy.DefaultLimitsConfig()
	cfg.OverridesFile = file
	l, err = tenancy.NewLimits(cfg, nil, nil)
	require.NoError(t, err)
	ok := l.LastReload()
	require.Equal(t, file, ok.File)
	require.NoError(t, ok.Err)
	require.Equal(t, 2, ok.Tenants)
	require.False(t, ok.Loaded.IsZero())
	require.Equal(t, ok.At, ok.Loaded)

	require.NoError(t, os.WriteFile(file, []byte("overrides: [not a map\n"), 0o600))
	require.Error(t, l.Reload())
	bad := l.LastReload()
	require.Error(t, bad.Err)
	require.Equal(t, ok.Loaded, bad.Loaded, "the limits loaded before stay in force")
	require.Equal(t, 2, bad.Tenants)
	require.False(t, bad.At.Before(ok.At))
}
