package tenancy_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/luminate-io/luminate/tenancy"
)

// FuzzVerify feeds arbitrary strings to a Verifier configured with every
// key type. It must never panic, and it must accept a token only if the
// token's signature verifies, by the standard library alone, under a
// configured key of the type its alg names (so never "none", and HMAC
// only with the shared secret).
func FuzzVerify(f *testing.F) {
	k := keys()
	files := writeKeyFiles(f)
	v, _ := newVerifier(f, tenancy.AuthConfig{HMACSecretFile: files.secret, PublicKeyFile: files.p384, JWKSFile: files.jwks})

	c := claims("scopes", []string{"admin", "x"})
	for _, seed := range []string{
		sign(f, jwt.SigningMethodHS256, k.secret, "", c),
		sign(f, jwt.SigningMethodHS512, k.secret, "", c),
		sign(f, jwt.SigningMethodRS256, k.rsa, "rsa-1", c),
		sign(f, jwt.SigningMethodPS384, k.rsa, "rsa-1", c),
		sign(f, jwt.SigningMethodES256, k.p256, "ec-1", c),
		sign(f, jwt.SigningMethodES384, k.p384, "", c),
		sign(f, jwt.SigningMethodEdDSA, k.ed, "ed-1", c),
		sign(f, jwt.SigningMethodHS256, k.rsaPub, "rsa-1", c),
		sign(f, jwt.SigningMethodHS256, k.p384Pub, "", c),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", c),
		sign(f, jwt.SigningMethodHS256, k.secret, "", claims("exp", nil)),
		sign(f, jwt.SigningMethodHS256, k.secret, "", claims("tenant_id", "a b")),
		"", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(raw)
		if err != nil {
			var ae *tenancy.AuthError
			require.ErrorAs(t, err, &ae)
			require.Zero(t, p)
			return
		}
		require.True(t, signatureValid(k, raw), "accepted a token whose signature does not verify: %q", raw)
		_, err = tenancy.ParseID(string(p.Tenant))
		require.NoError(t, err)
		for _, s := range p.Scopes {
			require.Contains(t, tenancy.Scopes(), s)
		}
	})
}

// signatureValid checks raw's signature with the standard library against
// the test keys of the type its alg names.
func signatureValid(k testKeys, raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hb, &header) != nil {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	input := []byte(parts[0] + "." + parts[1])
	digest := func(h func() hash.Hash) []byte {
		d := h()
		d.Write(input)
		return d.Sum(nil)
	}
	hashes := map[string]struct {
		h func() hash.Hash
		c crypto.Hash
	}{
		"256": {sha256.New, crypto.SHA256}, "384": {sha512.New384, crypto.SHA384}, "512": {sha512.New, crypto.SHA512},
	}
	if header.Alg == "EdDSA" {
		return ed25519.Verify(k.ed.Public().(ed25519.PublicKey), input, sig)
	}
	if len(header.Alg) != 5 {
		return false
	}
	hf, ok := hashes[header.Alg[2:]]
	if !ok {
		return false
	}
	switch header.Alg[:2] {
	case "HS":
		m := hmac.New(hf.h, k.secret)
		m.Write(input)
		return hmac.Equal(m.Sum(nil), sig)
	case "RS":
		return rsa.VerifyPKCS1v15(&k.rsa.PublicKey, hf.c, digest(hf.h), sig) == nil
	case "PS":
		return rsa.VerifyPSS(&k.rsa.PublicKey, hf.c, digest(hf.h), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
	case "ES":
		for _, key := range []*ecdsa.PrivateKey{k.p256, k.p384} {
			size := (key.Curve.Params().BitSize + 7) / 8
			if len(sig) == 2*size {
				r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
				if ecdsa.Verify(&key.PublicKey, digest(hf.h), r, s) {
					return true
				}
			}
		}
	}
	return false
}

// FuzzOverrides feeds arbitrary files to the overrides parser. It must
// never panic; what it accepts has valid tenant IDs and limits, and
// survives rendering and parsing again unchanged.
func FuzzOverrides(f *testing.F) {
	for _, seed := range []string{
		"",
		"overrides:\n",
		"overrides:\n  acme:\n    ingestion_rate: 50000\n    ingestion_burst: 100000\n    max_active_series: 1_000\n",
		"overrides: {a: {request_rate: 1.5, request_burst: 2}, b.c-d_e: {max_concurrent_queries: 0}}\n",
		"overrides:\n  acme: {query_rate: .inf, query_burst: 1}\n",
		"overrides:\n  acme: {max_series_per_query: 9223372036854775807}\n",
		"overrides:\n  acme: &x {max_samples_per_query: 5}\n  beta: *x\n",
		"overrides: {acme: {}}\n---\n",
		"overrides:\n  acme: {ingestion_rate: 1e300}\n",
	} {
		f.Add([]byte(seed))
	}
	d := tenancy.DefaultTenantLimits()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := tenancy.ParseOverrides(data, d)
		if err != nil {
			return
		}
		for id, tl := range got {
			_, err := tenancy.ParseID(string(id))
			require.NoError(t, err)
			require.NoError(t, tl.Validate())
		}
		out, err := tenancy.MarshalOverrides(data)
		require.NoError(t, err)
		again, err := tenancy.ParseOverrides(out, d)
		require.NoError(t, err, "rendered:\n%s", out)
		require.True(t, reflect.DeepEqual(got, again), "round trip changed the limits:\n%s", out)
	})
}

// FuzzJWKS feeds arbitrary JSON Web Key Sets to the JWKS parser. It must
// never panic; a set it accepts has at least one key, and unique key IDs.
func FuzzJWKS(f *testing.F) {
	k := keys()
	f.Add(jwksJSON(f, jwkOf("rsa-1", "RS256", k.rsa.Public()), jwkOf("ec-1", "", k.p256.Public()), jwkOf("ed-1", "EdDSA", k.ed.Public())))
	f.Add(jwksJSON(f, jwkOf("", "", k.p384.Public())))
	f.Add(jwksJSON(f, encKey("x", k.rsa.Public()), map[string]any{"kty": "oct", "k": "AAAA"}))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kids, err := tenancy.ParseJWKS(data)
		if err != nil {
			return
		}
		require.NotEmpty(t, kids)
		seen := map[string]bool{}
		for _, kid := range kids {
			require.False(t, seen[kid], "duplicate kid %q", kid)
			seen[kid] = true
		}
	})
}
