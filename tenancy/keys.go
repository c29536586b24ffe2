package tenancy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
)

// Key material limits.
const (
	// MinHMACSecretLength is the shortest HMAC secret accepted, in bytes
	// (RFC 7518 section 3.2: a key at least as long as the hash output).
	MinHMACSecretLength = 32
	// MinRSAKeyBits is the smallest RSA modulus accepted.
	MinRSAKeyBits = 2048
	// maxKeyFileSize bounds secret, PEM and JWKS files.
	maxKeyFileSize = 1 << 20
)

// The algorithms each key type verifies. HMAC algorithms are only ever
// allowed for a configured HMAC secret, public-key algorithms only for the
// matching public key type and curve.
var (
	hmacAlgs    = []string{"HS256", "HS384", "HS512"}
	rsaAlgs     = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ed25519Algs = []string{"EdDSA"}
)

// algsFor returns the JWS algorithms key may verify, or nil if key is of a
// type Luminate does not accept.
func algsFor(key any) []string {
	switch k := key.(type) {
	case []byte:
		return hmacAlgs
	case *rsa.PublicKey:
		return rsaAlgs
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		case elliptic.P521():
			return []string{"ES512"}
		}
	case ed25519.PublicKey:
		return ed25519Algs
	}
	return nil
}

// keyAllows reports whether key may verify a token signed with alg.
func keyAllows(key any, alg string) bool { return slices.Contains(algsFor(key), alg) }

// readKeyFile reads a key file of at most maxKeyFileSize bytes.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFileSize)
	}
	return data, nil
}

// parsePublicKeyPEM returns the public key in the first PEM block of data:
// a PKIX "PUBLIC KEY", a PKCS #1 "RSA PUBLIC KEY" or a "CERTIFICATE".
func parsePublicKeyPEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("PEM block is a %s; give the public key instead (openssl pkey -in KEY -pubout)", block.Type)
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkPublicKey(key)
}

// checkPublicKey refuses key types and sizes Luminate does not verify.
func checkPublicKey(key any) (any, error) {
	if algsFor(key) == nil {
		return nil, fmt.Errorf("unsupported public key type %T (want RSA, ECDSA P-256/P-384/P-521 or Ed25519)", key)
	}
	if k, ok := key.(*rsa.PublicKey); ok && k.N.BitLen() < MinRSAKeyBits {
		return nil, fmt.Errorf("RSA key of %d bits is too small (minimum %d)", k.N.BitLen(), MinRSAKeyBits)
	}
	return key, nil
}

// jwk is one verification key from a JWKS file.
type jwk struct {
	kid string
	alg string // the key's "alg" parameter; "" means any algorithm its type allows
	key any
}

// allows reports whether k may verify a token signed with alg.
func (k jwk) allows(alg string) bool {
	return (k.alg == "" || k.alg == alg) && keyAllows(k.key, alg)
}

// jwkJSON is a JSON Web Key (RFC 7517) as far as Luminate reads it.
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS parses a JSON Web Key Set. Keys not meant for signatures
// ("use" other than "sig") and key types Luminate does not verify are
// skipped and named in skipped; malformed keys, duplicate or missing key
// IDs and a set without any usable key are errors.
func parseJWKS(data []byte) (keys []jwk, skipped []string, err error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("decode JWKS: %w", err)
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		name := fmt.Sprintf("key %d (kid %q)", i, k.Kid)
		if k.Use != "" && k.Use != "sig" {
			skipped = append(skipped, fmt.Sprintf("%s: use %q is not sig", name, k.Use))
			continue
		}
		key, err := k.publicKey()
		if errors.Is(err, errUnsupportedJWK) {
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("JWKS %s: %w", name, err)
		}
		if k.Alg != "" && !keyAllows(key, k.Alg) {
			return nil, nil, fmt.Errorf("JWKS %s: alg %q does not fit a key of type %s", name, k.Alg, k.Kty)
		}
		if seen[k.Kid] {
			return nil, nil, fmt.Errorf("JWKS %s: duplicate kid", name)
		}
		seen[k.Kid] = true
		keys = append(keys, jwk{kid: k.Kid, alg: k.Alg, key: key})
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("JWKS holds no usable signature verification key")
	}
	if len(keys) > 1 {
		for i, k := range keys {
			if k.kid == "" {
				return nil, nil, fmt.Errorf("JWKS usable key %d has no kid; with more than one key every key needs one", i)
			}
		}
	}
	return keys, skipped, nil
}

var errUnsupportedJWK = errors.New("unsupported key")

func (k jwkJSON) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64Field("n", k.N, 0)
		if err != nil {
			return nil, err
		}
		e, err := b64Field("e", k.E, 0)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, fmt.Errorf("RSA exponent of %d bytes is too large", len(e))
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, fmt.Errorf("invalid RSA exponent %d", exp)
		}
		return checkPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp})
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("%w: EC curve %q", errUnsupportedJWK, k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64Field("x", k.X, size)
		if err != nil {
			return nil, err
		}
		y, err := b64Field("y", k.Y, size)
		if err != nil {
			return nil, err
		}
		point := append(append([]byte{4}, x...), y...)
		key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return key, nil
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("%w: OKP curve %q", errUnsupportedJWK, k.Crv)
		}
		x, err := b64Field("x", k.X, ed25519.PublicKeySize)
		if err != nil {
			return nil, err
		}
		return ed25519.PublicKey(x), nil
	default:
		return nil, fmt.Errorf("%w: kty %q", errUnsupportedJWK, k.Kty)
	}
}

// b64Field decodes a base64url (unpadded) JWK member; size > 0 demands
// exactly that many bytes.
func b64Field(name, s string, size int) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("missing %q", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not base64url: %w", name, err)
	}
	if size > 0 && len(b) != size {
		return nil, fmt.Errorf("%q is %d bytes, want %d", name, len(b), size)
	}
	return b, nil
}
