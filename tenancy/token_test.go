package tenancy_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

func TestMintVerify(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	scopes := []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead, tenancy.ScopeWrite}
	tests := []struct {
		method string
		key    []byte
		cfg    tenancy.AuthConfig
	}{
		{"", k.secret, tenancy.AuthConfig{HMACSecretFile: f.secret}},
		{"HS256", k.secret, tenancy.AuthConfig{HMACSecretFile: f.secret}},
		{"HS384", k.secret, tenancy.AuthConfig{HMACSecretFile: f.secret}},
		{"HS512", k.secret, tenancy.AuthConfig{HMACSecretFile: f.secret}},
		{"RS256", privPEM(t, k.rsa), tenancy.AuthConfig{PublicKeyFile: f.rsa}},
		{"PS512", privPEM(t, k.rsa), tenancy.AuthConfig{PublicKeyFile: f.rsa}},
		{"ES256", privPEM(t, k.p256), tenancy.AuthConfig{PublicKeyFile: f.p256}},
		{"ES384", privPEM(t, k.p384), tenancy.AuthConfig{PublicKeyFile: f.p384}},
		{"EdDSA", privPEM(t, k.ed), tenancy.AuthConfig{PublicKeyFile: f.ed}},
	}
	for _, tt := range tests {
		t.Run("method "+tt.method, func(t *testing.T) {
			tok, err := tenancy.Mint(tt.key, tt.method, "acme", scopes, time.Hour, "idp", "luminate", testNow)
			require.NoError(t, err)

			parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			require.NoError(t, err)
			want := tt.method
			if want == "" {
				want = "HS256"
			}
			require.Equal(t, want, parsed.Method.Alg())

			cfg := tt.cfg
			cfg.Issuer, cfg.Audience = "idp", "luminate"
			v, _ := newVerifier(t, cfg)
			p, err := v.Verify(tok)
			require.NoError(t, err)
			require.Equal(t, tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}}, p)

			tenancy.SetVerifierClock(v, func() time.Time { return testNow.Add(time.Hour + time.Minute) })
			_, err = v.Verify(tok)
			requireAuthError(t, err, tenancy.AuthReasonExpired, tok)
		})
	}
	t.Run("no scopes, no issuer or audience", func(t *testing.T) {
		tok, err := tenancy.Mint(k.secret, "", "t-1", nil, time.Minute, "", "", testNow)
		require.NoError(t, err)
		v, _ := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: f.secret})
		p, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, tenancy.Principal{Tenant: "t-1"}, p)
	})
	t.Run("subject", func(t *testing.T) {
		tok, err := tenancy.MintSubject(k.secret, "", "t-1", "ops@example.com", []tenancy.Scope{tenancy.ScopeAdmin}, time.Minute, "", "", testNow)
		require.NoError(t, err)
		v, _ := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: f.secret})
		p, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, tenancy.Principal{Tenant: "t-1", Scopes: []tenancy.Scope{tenancy.ScopeAdmin}, Subject: "ops@example.com"}, p)
	})
}

func TestMintErrors(t *testing.T) {
	k := keys()
	ok := func() (key []byte, method string, tenant tenancy.ID, scopes []tenancy.Scope, ttl time.Duration) {
		return k.secret, "HS256", "acme", []tenancy.Scope{tenancy.ScopeRead}, time.Hour
	}
	tests := []struct {
		name    string
		mutate  func(key *[]byte, method *string, tenant *tenancy.ID, scopes *[]tenancy.Scope, ttl *time.Duration)
		wantErr string
	}{
		{"invalid tenant", func(_ *[]byte, _ *string, tn *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) { *tn = "a/b" }, "invalid tenant id"},
		{"empty tenant", func(_ *[]byte, _ *string, tn *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) { *tn = "" }, "invalid tenant id"},
		{"unknown scope", func(_ *[]byte, _ *string, _ *tenancy.ID, s *[]tenancy.Scope, _ *time.Duration) {
			*s = []tenancy.Scope{"metrics:delete"}
		}, `unknown scope "metrics:delete"`},
		{"zero ttl", func(_ *[]byte, _ *string, _ *tenancy.ID, _ *[]tenancy.Scope, d *time.Duration) { *d = 0 }, "must be positive"},
		{"short secret", func(key *[]byte, _ *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) {
			*key = []byte("short")
		}, "at least 32"},
		{"none", func(_ *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) { *m = "none" }, "unsupported signing method"},
		{"unknown method", func(_ *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) { *m = "HS1" }, "unsupported signing method"},
		{"RS256 with a secret", func(_ *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) { *m = "RS256" }, "no PEM block"},
		{"ES256 with an RSA key", func(key *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) {
			*key, *m = privPEM(t, k.rsa), "ES256"
		}, "cannot sign ES256"},
		{"ES384 with a P-256 key", func(key *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) {
			*key, *m = privPEM(t, k.p256), "ES384"
		}, "cannot sign ES384"},
		{"public key to sign", func(key *[]byte, m *string, _ *tenancy.ID, _ *[]tenancy.Scope, _ *time.Duration) {
			*key, *m = k.rsaPub, "RS256"
		}, "unsupported PEM block type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, method, tenant, scopes, ttl := ok()
			tt.mutate(&key, &method, &tenant, &scopes, &ttl)
			_, err := tenancy.Mint(key, method, tenant, scopes, ttl, "", "", testNow)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestLoadHMACSecret(t *testing.T) {
	secret := strings.Repeat("k", 32)
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{"exact", secret, secret, ""},
		{"surrounding whitespace", "\n  " + secret + " \r\n", secret, ""},
		{"inner whitespace kept", "ab cd" + secret, "ab cd" + secret, ""},
		{"too short", "\n" + secret[:31] + "\n", "", "secret is 31 bytes, need at least 32"},
		{"empty", "", "", "openssl rand -hex 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tenancy.LoadHMACSecret(writeFile(t, "s", []byte(tt.content)))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
	_, err := tenancy.LoadHMACSecret(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestEnsureDevSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "auth", "dev-secret")

	created, err := tenancy.EnsureDevSecret(path)
	require.NoError(t, err)
	require.True(t, created)
	for p, mode := range map[string]os.FileMode{
		path:                             0o600,
		filepath.Dir(path):               0o700 | os.ModeDir,
		filepath.Dir(filepath.Dir(path)): 0o700 | os.ModeDir,
	} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode(), p)
	}
	first, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, first, 65)
	raw, err := hex.DecodeString(strings.TrimSpace(string(first)))
	require.NoError(t, err)
	require.Len(t, raw, 32)

	created, err = tenancy.EnsureDevSecret(path)
	require.NoError(t, err)
	require.False(t, created)
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, first, again, "an existing secret is never replaced")

	other := filepath.Join(dir, "other")
	created, err = tenancy.EnsureDevSecret(other)
	require.NoError(t, err)
	require.True(t, created)
	otherSecret, err := os.ReadFile(other)
	require.NoError(t, err)
	require.NotEqual(t, first, otherSecret)

	// The secret works end to end.
	key, err := tenancy.LoadHMACSecret(path)
	require.NoError(t, err)
	tok, err := tenancy.Mint(key, "", "dev", []tenancy.Scope{tenancy.ScopeAdmin}, time.Hour, "", "", testNow)
	require.NoError(t, err)
	v, _ := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: path})
	p, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, tenancy.ID("dev"), p.Tenant)

	// A path whose parent is a file fails.
	_, err = tenancy.EnsureDevSecret(filepath.Join(path, "x"))
	require.Error(t, err)
}

// TestMintOperator: `luminate token --scopes=operator` mints a token whose
// principal holds the operator scope, and nothing a tenant's admin implies.
func TestMintOperator(t *testing.T) {
	f := writeKeyFiles(t)
	key, err := tenancy.LoadHMACSecret(f.secret)
	require.NoError(t, err)
	tok, err := tenancy.Mint(key, "", "ops", []tenancy.Scope{tenancy.ScopeOperator}, time.Hour, "", "", testNow)
	require.NoError(t, err)
	v, _ := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: f.secret})
	p, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, tenancy.Principal{Tenant: "ops", Scopes: []tenancy.Scope{tenancy.ScopeOperator}}, p)
	require.True(t, p.Has(tenancy.ScopeOperator))
	require.False(t, p.Has(tenancy.ScopeRead))
}
