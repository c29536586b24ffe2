package tenancy

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Mint signs a token for tenant with scopes, valid for ttl from now, that a
// Verifier with the matching key accepts. method is the JWS algorithm,
// HS256 when empty. For HS256/384/512 key is the shared secret (at least
// MinHMACSecretLength bytes); for RS*/PS*/ES*/EdDSA it is a PEM private key
// (PKCS #8, PKCS #1 or SEC 1). The tenant goes in DefaultTenantClaim, the
// scopes space-separated in "scope"; issuer and audience are set when not
// empty.
func Mint(key []byte, method string, tenant ID, scopes []Scope, ttl time.Duration, issuer, audience string, now time.Time) (string, error) {
	return MintSubject(key, method, tenant, "", scopes, ttl, issuer, audience, now)
}

// MintSubject is Mint with a "sub" claim (when subject is not empty): who
// holds the token, which the audit lines of admin calls name.
func MintSubject(key []byte, method string, tenant ID, subject string, scopes []Scope, ttl time.Duration, issuer, audience string, now time.Time) (string, error) {
	if method == "" {
		method = "HS256"
	}
	if _, err := ParseID(string(tenant)); err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token ttl %v must be positive", ttl)
	}
	names := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(Scopes(), s) {
			return "", fmt.Errorf("unknown scope %q (known: %s, %s, %s, %s)", s, ScopeWrite, ScopeRead, ScopeAdmin, ScopeOperator)
		}
		if !slices.Contains(names, string(s)) {
			names = append(names, string(s))
		}
	}

	sm := jwt.GetSigningMethod(method)
	if sm == nil || !slices.Contains(allAlgs, method) {
		return "", fmt.Errorf("unsupported signing method %q (supported: %s)", method, strings.Join(allAlgs, ", "))
	}
	var signKey any
	if slices.Contains(hmacAlgs, method) {
		if len(key) < MinHMACSecretLength {
			return "", fmt.Errorf("hmac secret is %d bytes; need at least %d", len(key), MinHMACSecretLength)
		}
		signKey = key
	} else {
		priv, err := parsePrivateKeyPEM(key)
		if err != nil {
			return "", err
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return "", fmt.Errorf("signing key: unsupported private key type %T", priv)
		}
		pub := signer.Public()
		if !keyAllows(pub, method) {
			return "", fmt.Errorf("a %T cannot sign %s", pub, method)
		}
		signKey = priv
	}

	claims := jwt.MapClaims{
		DefaultTenantClaim: string(tenant),
		"iat":              now.Unix(),
		"exp":              now.Add(ttl).Unix(),
	}
	if len(names) > 0 {
		claims["scope"] = strings.Join(names, " ")
	}
	if subject != "" {
		claims["sub"] = subject
	}
	if issuer != "" {
		claims["iss"] = issuer
	}
	if audience != "" {
		claims["aud"] = audience
	}
	s, err := jwt.NewWithClaims(sm, claims).SignedString(signKey)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

var allAlgs = slices.Concat(hmacAlgs, rsaAlgs, []string{"ES256", "ES384", "ES512"}, ed25519Algs)

// parsePrivateKeyPEM parses the first PEM block of data as a private key.
func parsePrivateKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("signing key: no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("signing key: unsupported PEM block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return key, nil
}

// LoadHMACSecret reads the shared secret in path. Leading and trailing
// whitespace is not part of the secret, so files written by
// `openssl rand -hex 32 > FILE` or an editor work; the rest must be at
// least MinHMACSecretLength bytes.
func LoadHMACSecret(path string) ([]byte, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("--auth.jwt.hmac-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) < MinHMACSecretLength {
		return nil, fmt.Errorf("--auth.jwt.hmac-secret-file %s: secret is %d bytes, need at least %d (create one with `openssl rand -hex 32 > %s`)",
			path, len(secret), MinHMACSecretLength, path)
	}
	return secret, nil
}

// EnsureDevSecret creates path holding a new random secret (32 random
// bytes, hex-encoded, with a newline) unless path already exists. The file
// is created with mode 0600 and missing parent directories with 0700.
// created reports whether it wrote the file. An existing file is left
// untouched, whatever it holds.
func EnsureDevSecret(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("create secret directory: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return false, fmt.Errorf("generate secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil // created concurrently
	}
	if err != nil {
		return false, fmt.Errorf("create secret file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(raw[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, errors.Join(fmt.Errorf("write secret file: %w", err), os.Remove(path))
	}
	return true, nil
}
