package tenancy_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/apierror"
	"github.com/luminate-io/luminate/tenancy"
)

// testNow is the clock of every test verifier; tokens are minted around it.
var testNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type testKeys struct {
	secret  []byte
	rsa     *rsa.PrivateKey
	rsa2    *rsa.PrivateKey
	p256    *ecdsa.PrivateKey
	p384    *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	rsaPub  []byte // PEM
	p256Pub []byte
	p384Pub []byte
	edPub   []byte
}

// keys generates real keys once per test binary.
var keys = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.secret = []byte(strings.Repeat("s3cr3t-", 6))
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.rsaPub = pubPEM(k.rsa.Public())
	k.p256Pub = pubPEM(k.p256.Public())
	k.p384Pub = pubPEM(k.p384.Public())
	k.edPub = pubPEM(k.ed.Public())
	return k
})

func pubPEM(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func privPEM(t testing.TB, priv crypto.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf renders pub as a JWK.
func jwkOf(kid, alg string, pub crypto.PublicKey) map[string]any {
	m := map[string]any{"kid": kid, "use": "sig"}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(raw) - 1) / 2
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64(raw[1:1+size]), b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(k)
	}
	return m
}

func jwksJSON(t testing.TB, ks ...map[string]any) []byte {
	data, err := json.Marshal(map[string]any{"keys": ks})
	require.NoError(t, err)
	return data
}

func writeFile(t testing.TB, name string, data []byte) string {
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// sign signs claims with method and key, adding kid to the header if set.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// claims are valid claims for tenant acme at testNow, with overrides.
func claims(kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{
		"tenant_id": "acme",
		"scope":     "metrics:write metrics:read",
		"iat":       testNow.Unix(),
		"exp":       testNow.Add(time.Hour).Unix(),
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func newVerifier(t testing.TB, cfg tenancy.AuthConfig) (*tenancy.Verifier, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	v, err := tenancy.NewVerifier(cfg, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	tenancy.SetVerifierClock(v, func() time.Time { return testNow })
	return v, reg
}

type keyFiles struct{ secret, rsa, p256, p384, ed, jwks string }

func writeKeyFiles(t testing.TB) keyFiles {
	k := keys()
	return keyFiles{
		secret: writeFile(t, "secret", append(append([]byte{}, k.secret...), '\n')),
		rsa:    writeFile(t, "rsa.pem", k.rsaPub),
		p256:   writeFile(t, "p256.pem", k.p256Pub),
		p384:   writeFile(t, "p384.pem", k.p384Pub),
		ed:     writeFile(t, "ed.pem", k.edPub),
		jwks: writeFile(t, "jwks.json", jwksJSON(t,
			jwkOf("rsa-1", "", k.rsa.Public()),
			jwkOf("ec-1", "ES256", k.p256.Public()),
			jwkOf("ed-1", "", k.ed.Public()),
			encKey("enc-1", k.rsa2.Public()),
		)),
	}
}

// encKey is a JWK for encryption, which the verifier must never use.
func encKey(kid string, pub crypto.PublicKey) map[string]any {
	m := jwkOf(kid, "", pub)
	m["use"] = "enc"
	return m
}

func TestVerifyAlgorithms(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	tests := []struct {
		name   string
		cfg    tenancy.AuthConfig
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"HS256", tenancy.AuthConfig{HMACSecretFile: f.secret}, jwt.SigningMethodHS256, k.secret, ""},
		{"HS384", tenancy.AuthConfig{HMACSecretFile: f.secret}, jwt.SigningMethodHS384, k.secret, ""},
		{"HS512", tenancy.AuthConfig{HMACSecretFile: f.secret}, jwt.SigningMethodHS512, k.secret, ""},
		{"RS256 PEM", tenancy.AuthConfig{PublicKeyFile: f.rsa}, jwt.SigningMethodRS256, k.rsa, ""},
		{"RS512 PEM", tenancy.AuthConfig{PublicKeyFile: f.rsa}, jwt.SigningMethodRS512, k.rsa, ""},
		{"PS256 PEM", tenancy.AuthConfig{PublicKeyFile: f.rsa}, jwt.SigningMethodPS256, k.rsa, ""},
		{"ES256 PEM", tenancy.AuthConfig{PublicKeyFile: f.p256}, jwt.SigningMethodES256, k.p256, ""},
		{"ES384 PEM", tenancy.AuthConfig{PublicKeyFile: f.p384}, jwt.SigningMethodES384, k.p384, ""},
		{"EdDSA PEM", tenancy.AuthConfig{PublicKeyFile: f.ed}, jwt.SigningMethodEdDSA, k.ed, ""},
		{"RS256 JWKS kid", tenancy.AuthConfig{JWKSFile: f.jwks}, jwt.SigningMethodRS256, k.rsa, "rsa-1"},
		{"ES256 JWKS kid", tenancy.AuthConfig{JWKSFile: f.jwks}, jwt.SigningMethodES256, k.p256, "ec-1"},
		{"EdDSA JWKS kid", tenancy.AuthConfig{JWKSFile: f.jwks}, jwt.SigningMethodEdDSA, k.ed, "ed-1"},
		{"HS256 with HMAC and JWKS", tenancy.AuthConfig{HMACSecretFile: f.secret, JWKSFile: f.jwks}, jwt.SigningMethodHS256, k.secret, ""},
		{"EdDSA JWKS kid with HMAC too", tenancy.AuthConfig{HMACSecretFile: f.secret, JWKSFile: f.jwks}, jwt.SigningMethodEdDSA, k.ed, "ed-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, reg := newVerifier(t, tt.cfg)
			raw := sign(t, tt.method, tt.key, tt.kid, claims())
			p, err := v.Verify(raw)
			require.NoError(t, err)
			require.Equal(t, tenancy.Principal{Tenant: "acme", Scopes: []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}}, p)
			n, err := testutil.GatherAndCount(reg, "luminate_auth_failures_total")
			require.NoError(t, err)
			require.Positive(t, n)
			require.Zero(t, sumFailures(t, reg))
		})
	}
}

// metricValue sums the samples of metric name whose labels include want.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func sumFailures(t testing.TB, reg *prometheus.Registry) float64 {
	return metricValue(t, reg, "luminate_auth_failures_total", nil)
}

func failures(t testing.TB, reg *prometheus.Registry, reason string) float64 {
	return metricValue(t, reg, "luminate_auth_failures_total", map[string]string{"reason": reason})
}

func TestVerifyRejects(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	hmacCfg := tenancy.AuthConfig{HMACSecretFile: f.secret}
	rsaCfg := tenancy.AuthConfig{PublicKeyFile: f.rsa}
	tests := []struct {
		name   string
		cfg    tenancy.AuthConfig
		token  func(t *testing.T) string
		reason string
	}{
		{"alg none against HMAC", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"alg none against public key", rsaCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"HS256 signed with the PEM public key as secret", rsaCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.rsaPub, "", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"HS256 signed with the PEM public key, JWKS kid", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.rsaPub, "rsa-1", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"HS256 signed with the PEM public key, HMAC also configured", tenancy.AuthConfig{HMACSecretFile: f.secret, PublicKeyFile: f.rsa}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.rsaPub, "", claims())
		}, tenancy.AuthReasonSignature},
		{"ES256 token against RSA key", rsaCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES256, k.p256, "", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"ES256 key in JWKS used for RS256 kid", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa, "ec-1", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"ES384 token against P-256 key", tenancy.AuthConfig{PublicKeyFile: f.p256}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodES384, k.p384, "", claims())
		}, tenancy.AuthReasonAlgorithm},
		{"unknown kid", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa, "nope", claims())
		}, tenancy.AuthReasonUnknownKey},
		{"no kid with several JWKS keys", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa, "", claims())
		}, tenancy.AuthReasonUnknownKey},
		{"use=enc key is not used", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa2, "enc-1", claims())
		}, tenancy.AuthReasonUnknownKey},
		{"JWKS kid of another key", tenancy.AuthConfig{JWKSFile: f.jwks}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa2, "rsa-1", claims())
		}, tenancy.AuthReasonSignature},
		{"other HMAC secret", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), "", claims())
		}, tenancy.AuthReasonSignature},
		{"other RSA key", rsaCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, k.rsa2, "", claims())
		}, tenancy.AuthReasonSignature},
		{"tampered payload", hmacCfg, func(t *testing.T) string {
			parts := strings.Split(sign(t, jwt.SigningMethodHS256, k.secret, "", claims()), ".")
			parts[1] = b64([]byte(`{"tenant_id":"evil","exp":9999999999}`))
			return strings.Join(parts, ".")
		}, tenancy.AuthReasonSignature},
		{"truncated signature", hmacCfg, func(t *testing.T) string {
			s := sign(t, jwt.SigningMethodHS256, k.secret, "", claims())
			return s[:len(s)-4]
		}, tenancy.AuthReasonSignature},
		{"expired", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("exp", testNow.Add(-time.Minute).Unix(), "iat", testNow.Add(-time.Hour).Unix()))
		}, tenancy.AuthReasonExpired},
		{"missing exp", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("exp", nil))
		}, tenancy.AuthReasonMissingExp},
		{"nbf in the future", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("nbf", testNow.Add(time.Minute).Unix()))
		}, tenancy.AuthReasonNotYetValid},
		{"iat in the future", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("iat", testNow.Add(time.Minute).Unix()))
		}, tenancy.AuthReasonNotYetValid},
		{"exp of the wrong type", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("exp", "tomorrow"))
		}, tenancy.AuthReasonClaims},
		{"wrong issuer", tenancy.AuthConfig{HMACSecretFile: f.secret, Issuer: "https://idp"}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("iss", "https://evil"))
		}, tenancy.AuthReasonIssuer},
		{"missing issuer", tenancy.AuthConfig{HMACSecretFile: f.secret, Issuer: "https://idp"}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims())
		}, tenancy.AuthReasonIssuer},
		{"wrong audience", tenancy.AuthConfig{HMACSecretFile: f.secret, Audience: "luminate"}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("aud", []string{"grafana", "loki"}))
		}, tenancy.AuthReasonAudience},
		{"missing audience", tenancy.AuthConfig{HMACSecretFile: f.secret, Audience: "luminate"}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims())
		}, tenancy.AuthReasonAudience},
		{"tenant with a space", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("tenant_id", "acme corp"))
		}, tenancy.AuthReasonTenant},
		{"tenant too long", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("tenant_id", strings.Repeat("a", 129)))
		}, tenancy.AuthReasonTenant},
		{"tenant a number", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("tenant_id", 42))
		}, tenancy.AuthReasonTenant},
		{"tenant missing", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("tenant_id", nil))
		}, tenancy.AuthReasonTenant},
		{"tenant in another claim than configured", tenancy.AuthConfig{HMACSecretFile: f.secret, TenantClaim: "org"}, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims())
		}, tenancy.AuthReasonTenant},
		{"scope not a string", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("scope", 7))
		}, tenancy.AuthReasonClaims},
		{"scopes array with a number", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("scopes", []any{"admin", 1}))
		}, tenancy.AuthReasonClaims},
		{"crit header", hmacCfg, func(t *testing.T) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims())
			tok.Header["crit"] = []string{"exp"}
			s, err := tok.SignedString(k.secret)
			require.NoError(t, err)
			return s
		}, tenancy.AuthReasonMalformed},
		{"empty", hmacCfg, func(t *testing.T) string { return "" }, tenancy.AuthReasonMissingToken},
		{"one segment", hmacCfg, func(t *testing.T) string { return "abc" }, tenancy.AuthReasonMalformed},
		{"garbage segments", hmacCfg, func(t *testing.T) string { return "a.b.c" }, tenancy.AuthReasonMalformed},
		{"header not JSON", hmacCfg, func(t *testing.T) string { return b64([]byte("{")) + "." + b64([]byte("{}")) + ".AAAA" }, tenancy.AuthReasonMalformed},
		{"no alg", hmacCfg, func(t *testing.T) string { return b64([]byte(`{"typ":"JWT"}`)) + "." + b64([]byte("{}")) + ".AAAA" }, tenancy.AuthReasonMalformed},
		{"unknown alg", hmacCfg, func(t *testing.T) string { return b64([]byte(`{"alg":"HS1"}`)) + "." + b64([]byte("{}")) + ".AAAA" }, tenancy.AuthReasonAlgorithm},
		{"too long", hmacCfg, func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, k.secret, "", claims("pad", strings.Repeat("x", tenancy.MaxTokenLength)))
		}, tenancy.AuthReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, reg := newVerifier(t, tt.cfg)
			raw := tt.token(t)
			p, err := v.Verify(raw)
			require.Error(t, err)
			require.Zero(t, p)
			requireAuthError(t, err, tt.reason, raw)
			require.Equal(t, 1.0, failures(t, reg, tt.reason))
			require.Equal(t, 1.0, sumFailures(t, reg))
		})
	}
}

// requireAuthError checks err is a 401 with reason that does not leak raw.
func requireAuthError(t *testing.T, err error, reason, raw string) {
	t.Helper()
	var ae *tenancy.AuthError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, reason, ae.Reason, "message: %s", ae.Msg)
	require.ErrorIs(t, err, tenancy.ErrUnauthenticated)
	require.Equal(t, http.StatusUnauthorized, apierror.Classify(err).Status)
	for _, part := range strings.Split(raw, ".") {
		if len(part) >= 8 {
			require.NotContains(t, err.Error(), part)
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	tests := []struct {
		name   string
		cfg    tenancy.AuthConfig
		claims jwt.MapClaims
		ok     bool
	}{
		{"expired within default leeway", tenancy.AuthConfig{HMACSecretFile: f.secret}, claims("exp", testNow.Add(-20*time.Second).Unix()), true},
		{"expired beyond default leeway", tenancy.AuthConfig{HMACSecretFile: f.secret}, claims("exp", testNow.Add(-40*time.Second).Unix()), false},
		{"nbf within default leeway", tenancy.AuthConfig{HMACSecretFile: f.secret}, claims("nbf", testNow.Add(20*time.Second).Unix()), true},
		{"iat within default leeway", tenancy.AuthConfig{HMACSecretFile: f.secret}, claims("iat", testNow.Add(20*time.Second).Unix()), true},
		{"nbf beyond a custom leeway", tenancy.AuthConfig{HMACSecretFile: f.secret, Leeway: 5 * time.Second}, claims("nbf", testNow.Add(20*time.Second).Unix()), false},
		{"issuer and audience match", tenancy.AuthConfig{HMACSecretFile: f.secret, Issuer: "idp", Audience: "luminate"},
			claims("iss", "idp", "aud", []string{"grafana", "luminate"}), true},
		{"audience as a string", tenancy.AuthConfig{HMACSecretFile: f.secret, Audience: "luminate"}, claims("aud", "luminate"), true},
		{"tenant from a custom claim", tenancy.AuthConfig{HMACSecretFile: f.secret, TenantClaim: "org"}, claims("org", "acme"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newVerifier(t, tt.cfg)
			p, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", tt.claims))
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, tenancy.ID("acme"), p.Tenant)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestVerifyScopes(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	v, _ := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: f.secret})
	tests := []struct {
		name string
		kv   []any
		want []tenancy.Scope
	}{
		{"none", []any{"scope", nil}, nil},
		{"scope string", []any{"scope", "metrics:read"}, []tenancy.Scope{tenancy.ScopeRead}},
		{"scope string with unknown and extra spaces", []any{"scope", "  openid metrics:write  metrics:read profile"},
			[]tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead}},
		{"scopes array", []any{"scope", nil, "scopes", []string{"admin", "email"}}, []tenancy.Scope{tenancy.ScopeAdmin}},
		{"scopes string", []any{"scope", nil, "scopes", "metrics:read"}, []tenancy.Scope{tenancy.ScopeRead}},
		{"both forms, deduplicated", []any{"scope", "metrics:read", "scopes", []string{"metrics:read", "metrics:write"}},
			[]tenancy.Scope{tenancy.ScopeRead, tenancy.ScopeWrite}},
		{"only unknown", []any{"scope", "read write"}, nil},
		{"operator", []any{"scope", "operator metrics:read"}, []tenancy.Scope{tenancy.ScopeOperator, tenancy.ScopeRead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claims(tt.kv...)))
			require.NoError(t, err)
			require.Equal(t, tt.want, p.Scopes)
		})
	}
}

func TestRequireScope(t *testing.T) {
	tests := []struct {
		name   string
		scopes []tenancy.Scope
		need   tenancy.Scope
		ok     bool
	}{
		{"granted", []tenancy.Scope{tenancy.ScopeWrite}, tenancy.ScopeWrite, true},
		{"admin implies all", []tenancy.Scope{tenancy.ScopeAdmin}, tenancy.ScopeRead, true},
		// A tenant's admin is its tenant's: it never reaches what every
		// tenant shares (/metrics, detailed health, pprof).
		{"admin does not imply operator", []tenancy.Scope{tenancy.ScopeAdmin}, tenancy.ScopeOperator, false},
		{"operator", []tenancy.Scope{tenancy.ScopeOperator}, tenancy.ScopeOperator, true},
		{"operator implies no tenant scope", []tenancy.Scope{tenancy.ScopeOperator}, tenancy.ScopeRead, false},
		{"missing", []tenancy.Scope{tenancy.ScopeRead}, tenancy.ScopeWrite, false},
		{"none", nil, tenancy.ScopeRead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tenancy.RequireScope(tenancy.Principal{Tenant: "acme", Scopes: tt.scopes}, tt.need)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tenancy.ErrPermissionDenied)
			require.Equal(t, http.StatusForbidden, apierror.Classify(err).Status)
			require.Contains(t, err.Error(), string(tt.need))
		})
	}
}

func TestAuthenticate(t *testing.T) {
	k := keys()
	f := writeKeyFiles(t)
	good := sign(t, jwt.SigningMethodHS256, k.secret, "", claims())
	tests := []struct {
		name    string
		headers []string
		reason  string // "" means accepted
	}{
		{"Bearer", []string{"Bearer " + good}, ""},
		{"lower-case scheme", []string{"bearer " + good}, ""},
		{"surrounding spaces", []string{"  Bearer   " + good + " "}, ""},
		{"missing", nil, tenancy.AuthReasonMissingToken},
		{"Basic with the token as password", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("acme:"+good))}, ""},
		{"Basic with another password", []string{"Basic dXNlcjpwYXNz"}, tenancy.AuthReasonMalformed},
		{"Basic with no password", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("acme"))}, tenancy.AuthReasonMissingToken},
		{"Basic not base64", []string{"Basic !!!"}, tenancy.AuthReasonMalformed},
		{"token without scheme", []string{good}, tenancy.AuthReasonMissingToken},
		{"empty Bearer", []string{"Bearer "}, tenancy.AuthReasonMissingToken},
		{"empty header", []string{""}, tenancy.AuthReasonMissingToken},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, tenancy.AuthReasonMalformed},
		{"bad token", []string{"Bearer " + good[:len(good)-3]}, tenancy.AuthReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, reg := newVerifier(t, tenancy.AuthConfig{HMACSecretFile: f.secret})
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			p, err := v.Authenticate(r)
			if tt.reason == "" {
				require.NoError(t, err)
				require.Equal(t, tenancy.ID("acme"), p.Tenant)
				return
			}
			requireAuthError(t, err, tt.reason, good)
			require.Equal(t, 1.0, failures(t, reg, tt.reason))
		})
	}
}

func TestDisabled(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	v, err := tenancy.NewVerifier(tenancy.AuthConfig{Disabled: true}, logger, prometheus.NewRegistry())
	require.NoError(t, err)
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "AUTHENTICATION IS DISABLED")

	want := tenancy.Principal{Tenant: "anonymous", Scopes: []tenancy.Scope{tenancy.ScopeWrite, tenancy.ScopeRead, tenancy.ScopeAdmin, tenancy.ScopeOperator}}
	p, err := v.Authenticate(httptest.NewRequest(http.MethodGet, "/", nil))
	require.NoError(t, err)
	require.Equal(t, want, p)
	p, err = v.Verify("garbage")
	require.NoError(t, err)
	require.Equal(t, want, p)
}

func TestAuthConfig(t *testing.T) {
	t.Run("flags", func(t *testing.T) {
		var cfg tenancy.AuthConfig
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.RegisterFlags(fs)
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		require.ElementsMatch(t, []string{
			"auth.jwt.hmac-secret-file", "auth.jwt.public-key-file", "auth.jwt.jwks-file",
			"auth.jwt.issuer", "auth.jwt.audience", "auth.jwt.tenant-claim", "auth.disabled",
		}, names)
		require.Equal(t, tenancy.DefaultTenantClaim, cfg.TenantClaim)
		require.Equal(t, tenancy.DefaultLeeway, cfg.Leeway)
		require.NoError(t, fs.Parse([]string{
			"--auth.jwt.hmac-secret-file=s", "--auth.jwt.public-key-file=p", "--auth.jwt.jwks-file=j",
			"--auth.jwt.issuer=i", "--auth.jwt.audience=a", "--auth.jwt.tenant-claim=org", "--auth.disabled",
		}))
		require.Equal(t, tenancy.AuthConfig{HMACSecretFile: "s", PublicKeyFile: "p", JWKSFile: "j", Issuer: "i",
			Audience: "a", TenantClaim: "org", Disabled: true, Leeway: tenancy.DefaultLeeway}, cfg)
	})
	t.Run("no key refuses with instructions", func(t *testing.T) {
		cfg := tenancy.AuthConfig{}
		err := cfg.Validate()
		require.ErrorIs(t, err, tenancy.ErrNoAuthKey)
		for _, want := range []string{"--auth.jwt.hmac-secret-file", "openssl rand", "luminate token", "--auth.jwt.jwks-file", "--auth.jwt.public-key-file", "--auth.disabled"} {
			require.Contains(t, err.Error(), want)
		}
		_, err = tenancy.NewVerifier(cfg, nil, nil)
		require.ErrorIs(t, err, tenancy.ErrNoAuthKey)
	})
	for _, cfg := range []tenancy.AuthConfig{{Disabled: true}, {HMACSecretFile: "x"}, {PublicKeyFile: "x"}, {JWKSFile: "x"}} {
		require.NoError(t, cfg.Validate())
	}
	require.Error(t, (&tenancy.AuthConfig{HMACSecretFile: "x", Leeway: -time.Second}).Validate())
}

func TestNewVerifierKeyFiles(t *testing.T) {
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	encOnly := encKey("a", k.rsa.Public())
	oct := map[string]any{"kty": "oct", "kid": "h", "k": b64(k.secret)}
	noKid := jwkOf("", "", k.ed.Public())
	tests := []struct {
		name    string
		cfg     func(t *testing.T) tenancy.AuthConfig
		wantErr string
	}{
		{"missing secret file", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{HMACSecretFile: filepath.Join(t.TempDir(), "nope")}
		}, "no such file"},
		{"short secret", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{HMACSecretFile: writeFile(t, "s", []byte("short\n"))}
		}, "need at least 32"},
		{"private key as public key", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{PublicKeyFile: writeFile(t, "k.pem", privPEM(t, k.rsa))}
		}, "give the public key"},
		{"not PEM", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{PublicKeyFile: writeFile(t, "k.pem", []byte("hello"))}
		}, "no PEM block"},
		{"RSA key too small", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{PublicKeyFile: writeFile(t, "k.pem", pubPEM(small.Public()))}
		}, "too small"},
		{"JWKS not JSON", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", []byte("{"))}
		}, "decode JWKS"},
		{"JWKS without usable keys", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, encOnly, oct))}
		}, "no usable"},
		{"JWKS duplicate kid", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, jwkOf("a", "", k.rsa.Public()), jwkOf("a", "", k.ed.Public())))}
		}, "duplicate kid"},
		{"JWKS several keys, one without kid", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, jwkOf("a", "", k.rsa.Public()), noKid))}
		}, "needs one"},
		{"JWKS alg does not fit key", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, jwkOf("a", "HS256", k.rsa.Public())))}
		}, "does not fit"},
		{"JWKS small RSA", func(t *testing.T) tenancy.AuthConfig {
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, jwkOf("a", "", small.Public())))}
		}, "too small"},
		{"JWKS EC point off curve", func(t *testing.T) tenancy.AuthConfig {
			bad := jwkOf("a", "", k.p256.Public())
			bad["y"] = bad["x"]
			return tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, bad))}
		}, "EC point"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tenancy.NewVerifier(tt.cfg(t), nil, nil)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}

	t.Run("single JWKS key without kid, token without kid", func(t *testing.T) {
		v, _ := newVerifier(t, tenancy.AuthConfig{JWKSFile: writeFile(t, "j", jwksJSON(t, noKid, encOnly, oct))})
		_, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims()))
		require.NoError(t, err)
	})
	t.Run("certificate and PKCS1 PEM", func(t *testing.T) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.rsa.Public(), k.rsa)
		require.NoError(t, err)
		for _, block := range []*pem.Block{
			{Type: "CERTIFICATE", Bytes: der},
			{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)},
		} {
			v, _ := newVerifier(t, tenancy.AuthConfig{PublicKeyFile: writeFile(t, "k.pem", pem.EncodeToMemory(block))})
			_, err := v.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, "", claims()))
			require.NoError(t, err, block.Type)
		}
	})
}

func TestNewVerifierRegistersMetric(t *testing.T) {
	f := writeKeyFiles(t)
	reg := prometheus.NewRegistry()
	_, err := tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: f.secret}, nil, reg)
	require.NoError(t, err)
	_, err = tenancy.NewVerifier(tenancy.AuthConfig{HMACSecretFile: f.secret}, nil, reg)
	var are prometheus.AlreadyRegisteredError
	require.True(t, errors.As(err, &are), "second verifier on one registry: %v", err)
}

func BenchmarkVerify(b *testing.B) {
	k := keys()
	f := writeKeyFiles(b)
	for _, bc := range []struct {
		name   string
		cfg    tenancy.AuthConfig
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", tenancy.AuthConfig{HMACSecretFile: f.secret}, jwt.SigningMethodHS256, k.secret},
		{"ES256", tenancy.AuthConfig{PublicKeyFile: f.p256}, jwt.SigningMethodES256, k.p256},
		{"EdDSA", tenancy.AuthConfig{PublicKeyFile: f.ed}, jwt.SigningMethodEdDSA, k.ed},
		{"RS256", tenancy.AuthConfig{PublicKeyFile: f.rsa}, jwt.SigningMethodRS256, k.rsa},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, _ := newVerifier(b, bc.cfg)
			raw := sign(b, bc.method, bc.key, "", claims())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
