package tenancy

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of AuthConfig.
const (
	DefaultTenantClaim = "tenant_id"
	DefaultLeeway      = 30 * time.Second
	// MaxTokenLength bounds the bearer tokens Luminate reads.
	MaxTokenLength = 16 << 10
)

// AnonymousTenant is the single tenant of a server run with --auth.disabled.
const AnonymousTenant ID = "anonymous"

// AuthConfig configures token verification.
type AuthConfig struct {
	HMACSecretFile string // shared secret for HS256/384/512
	PublicKeyFile  string // PEM public key for RS*/PS*/ES*/EdDSA
	JWKSFile       string // JSON Web Key Set; keys chosen by the token's kid
	Issuer         string // required iss, if set
	Audience       string // required aud member, if set
	TenantClaim    string // claim holding the tenant ID; "" means DefaultTenantClaim
	Disabled       bool   // development only: every request is AnonymousTenant with all scopes
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means
	// DefaultLeeway. It has no flag.
	Leeway time.Duration
}

// RegisterFlags registers the --auth.* flags on f.
func (c *AuthConfig) RegisterFlags(f *flag.FlagSet) {
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	f.StringVar(&c.HMACSecretFile, "auth.jwt.hmac-secret-file", c.HMACSecretFile,
		"The `FILE` holding the shared secret (at least 32 bytes, surrounding whitespace ignored) that verifies HS256/HS384/HS512 tokens. Create one with: openssl rand -hex 32 > FILE; mint tokens with: luminate token.")
	f.StringVar(&c.PublicKeyFile, "auth.jwt.public-key-file", c.PublicKeyFile,
		"PEM file with the public key (RSA, ECDSA or Ed25519) that verifies RS*/PS*/ES*/EdDSA tokens.")
	f.StringVar(&c.JWKSFile, "auth.jwt.jwks-file", c.JWKSFile,
		"JSON Web Key Set file with the public keys that verify tokens; the token's kid selects the key.")
	f.StringVar(&c.Issuer, "auth.jwt.issuer", c.Issuer, "If set, tokens must carry this iss claim.")
	f.StringVar(&c.Audience, "auth.jwt.audience", c.Audience, "If set, tokens' aud claim must include this value.")
	tc := c.TenantClaim
	if tc == "" {
		tc = DefaultTenantClaim
	}
	f.StringVar(&c.TenantClaim, "auth.jwt.tenant-claim", tc, "Token claim holding the tenant ID ([A-Za-z0-9_.-]{1,128}).")
	f.BoolVar(&c.Disabled, "auth.disabled", c.Disabled,
		"DEVELOPMENT ONLY: accept every request without a token, as tenant \"anonymous\" with all scopes (operator included: /metrics and the detailed health report are open too).")
}

// ErrNoAuthKey is returned by Validate when authentication is on but no
// key is configured.
var ErrNoAuthKey = errors.New("authentication is on but no key to verify tokens is configured")

// Validate checks c without reading any file.
func (c *AuthConfig) Validate() error {
	if c.Leeway < 0 {
		return fmt.Errorf("auth leeway %v is negative", c.Leeway)
	}
	if c.Disabled {
		return nil
	}
	if c.HMACSecretFile == "" && c.PublicKeyFile == "" && c.JWKSFile == "" {
		return fmt.Errorf("%w. Either "+
			"(1) create a shared secret with `openssl rand -hex 32 > secret`, start with --auth.jwt.hmac-secret-file=secret "+
			"and mint tokens with `luminate token --auth.jwt.hmac-secret-file=secret --tenant=NAME --scopes=metrics:write,metrics:read`; "+
			"(2) verify your identity provider's tokens with --auth.jwt.public-key-file=KEY.pem or --auth.jwt.jwks-file=JWKS.json; "+
			"or (3) for local development only, start with --auth.disabled", ErrNoAuthKey)
	}
	return nil
}

// Reasons a token is refused: the reason label of
// luminate_auth_failures_total and AuthError.Reason.
const (
	AuthReasonMissingToken = "missing_token"
	AuthReasonMalformed    = "malformed"
	AuthReasonAlgorithm    = "algorithm_not_allowed"
	AuthReasonUnknownKey   = "unknown_key"
	AuthReasonSignature    = "bad_signature"
	AuthReasonMissingExp   = "missing_exp"
	AuthReasonExpired      = "expired"
	AuthReasonNotYetValid  = "not_yet_valid"
	AuthReasonIssuer       = "wrong_issuer"
	AuthReasonAudience     = "wrong_audience"
	AuthReasonTenant       = "bad_tenant"
	AuthReasonClaims       = "bad_claims"
)

var authReasons = []string{
	AuthReasonMissingToken, AuthReasonMalformed, AuthReasonAlgorithm, AuthReasonUnknownKey,
	AuthReasonSignature, AuthReasonMissingExp, AuthReasonExpired, AuthReasonNotYetValid,
	AuthReasonIssuer, AuthReasonAudience, AuthReasonTenant, AuthReasonClaims,
}

// Verifier turns bearer tokens into Principals. It is safe for concurrent
// use. Keys are read once, by NewVerifier.
type Verifier struct {
	disabled    bool
	tenantClaim string
	issuer      string
	audience    string
	hmacSecret  []byte // nil if not configured
	publicKey   any    // nil if not configured
	jwks        []jwk  // nil if not configured
	methods     []string
	parser      *jwt.Parser
	now         func() time.Time
	failures    *prometheus.CounterVec
}

// NewVerifier reads the keys cfg names and returns a Verifier. With
// cfg.Disabled it reads nothing, logs a warning and accepts everything.
func NewVerifier(cfg AuthConfig, logger *slog.Logger, reg prometheus.Registerer) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		disabled:    cfg.Disabled,
		tenantClaim: cfg.TenantClaim,
		issuer:      cfg.Issuer,
		audience:    cfg.Audience,
		now:         time.Now,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "luminate_auth_failures_total",
			Help: "Requests refused because their bearer token was missing or invalid, by reason.",
		}, []string{"reason"}),
	}
	if v.tenantClaim == "" {
		v.tenantClaim = DefaultTenantClaim
	}
	for _, r := range authReasons {
		v.failures.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(v.failures); err != nil {
			return nil, fmt.Errorf("register auth metrics: %w", err)
		}
	}
	if cfg.Disabled {
		logger.Warn("AUTHENTICATION IS DISABLED (--auth.disabled): every request is accepted without a token as tenant \"anonymous\" with all scopes. Use this only for development, never on a reachable network.")
		return v, nil
	}

	if cfg.HMACSecretFile != "" {
		secret, err := LoadHMACSecret(cfg.HMACSecretFile)
		if err != nil {
			return nil, err
		}
		v.hmacSecret = secret
		v.methods = append(v.methods, hmacAlgs...)
	}
	if cfg.PublicKeyFile != "" {
		data, err := readKeyFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--auth.jwt.public-key-file: %w", err)
		}
		key, err := parsePublicKeyPEM(data)
		if err != nil {
			return nil, fmt.Errorf("--auth.jwt.public-key-file %s: %w", cfg.PublicKeyFile, err)
		}
		v.publicKey = key
		v.methods = append(v.methods, algsFor(key)...)
	}
	if cfg.JWKSFile != "" {
		data, err := readKeyFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("--auth.jwt.jwks-file: %w", err)
		}
		keys, skipped, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("--auth.jwt.jwks-file %s: %w", cfg.JWKSFile, err)
		}
		for _, s := range skipped {
			logger.Warn("JWKS key skipped", "file", cfg.JWKSFile, "key", s)
		}
		v.jwks = keys
		for _, k := range keys {
			if k.alg != "" {
				v.methods = append(v.methods, k.alg)
			} else {
				v.methods = append(v.methods, algsFor(k.key)...)
			}
		}
	}
	slices.Sort(v.methods)
	v.methods = slices.Compact(v.methods)

	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	logger.Info("token verification configured", "algorithms", strings.Join(v.methods, ","),
		"tenant_claim", v.tenantClaim, "issuer", cfg.Issuer, "audience", cfg.Audience)
	return v, nil
}

// KeyStatus describes the verification keys a Verifier holds.
type KeyStatus struct {
	Disabled   bool     // --auth.disabled: no token is verified
	Keys       int      // keys loaded: the HMAC secret, the public key, the JWKS keys
	Algorithms []string // signing algorithms accepted
}

// KeyStatus reports the keys NewVerifier loaded (they are not reloaded).
func (v *Verifier) KeyStatus() KeyStatus {
	n := len(v.jwks)
	if v.hmacSecret != nil {
		n++
	}
	if v.publicKey != nil {
		n++
	}
	return KeyStatus{Disabled: v.disabled, Keys: n, Algorithms: slices.Clone(v.methods)}
}

// Authenticate verifies the bearer token in r's Authorization header.
func (v *Verifier) Authenticate(r *http.Request) (Principal, error) {
	if v.disabled {
		return anonymous(), nil
	}
	raw, err := bearerToken(r.Header.Values("Authorization"))
	if err != nil {
		return Principal{}, v.fail(err)
	}
	return v.Verify(raw)
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header (RFC 6750; the scheme is case-insensitive), or the password of an
// "Authorization: Basic" header, for clients that can only send basic auth
// (promtool 2.42's query instant takes http://user:TOKEN@host/; Grafana and
// Mimir users know the convention). The user name is ignored: the token
// names the tenant.
func bearerToken(values []string) (string, *AuthError) {
	switch len(values) {
	case 0:
		return "", &AuthError{Reason: AuthReasonMissingToken, Msg: "missing bearer token (send Authorization: Bearer <token>)"}
	case 1:
	default:
		return "", &AuthError{Reason: AuthReasonMalformed, Msg: "more than one Authorization header"}
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	if strings.EqualFold(scheme, "Basic") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		if err != nil {
			return "", &AuthError{Reason: AuthReasonMalformed, Msg: "basic credentials are not base64"}
		}
		_, token, _ = strings.Cut(string(raw), ":")
		scheme = "Bearer"
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &AuthError{Reason: AuthReasonMissingToken, Msg: "Authorization header is not a bearer token (send Authorization: Bearer <token>)"}
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", &AuthError{Reason: AuthReasonMissingToken, Msg: "empty bearer token"}
	}
	return token, nil
}

// Verify verifies raw, a compact JWS, and returns its principal. Every
// error is an *AuthError (wrapping ErrUnauthenticated) whose message never
// contains the token.
func (v *Verifier) Verify(raw string) (Principal, error) {
	if v.disabled {
		return anonymous(), nil
	}
	p, aerr := v.verify(raw)
	if aerr != nil {
		return Principal{}, v.fail(aerr)
	}
	return p, nil
}

func (v *Verifier) fail(e *AuthError) error {
	v.failures.WithLabelValues(e.Reason).Inc()
	return e
}

func anonymous() Principal {
	return Principal{Tenant: AnonymousTenant, Scopes: Scopes()}
}

// Errors of keyFunc, classified by verify.
var (
	errAlgKey     = errors.New("algorithm does not fit the key")
	errUnknownKey = errors.New("no key for token")
)

// keyFunc picks the verification key for t: the HMAC secret for HS*, the
// JWKS key named by kid, else the PEM public key, else the only JWKS key.
// The key must fit the algorithm, so a token signed with HMAC over the
// public key's bytes can never verify.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if slices.Contains(hmacAlgs, alg) {
		if v.hmacSecret == nil {
			return nil, errAlgKey
		}
		return v.hmacSecret, nil
	}
	kid, hasKid := t.Header["kid"].(string)
	if hasKid && kid != "" {
		for _, k := range v.jwks {
			if k.kid == kid {
				if !k.allows(alg) {
					return nil, errAlgKey
				}
				return k.key, nil
			}
		}
	}
	switch {
	case v.publicKey != nil:
		if !keyAllows(v.publicKey, alg) {
			return nil, errAlgKey
		}
		return v.publicKey, nil
	case !hasKid && len(v.jwks) == 1:
		if !v.jwks[0].allows(alg) {
			return nil, errAlgKey
		}
		return v.jwks[0].key, nil
	}
	return nil, errUnknownKey
}

func (v *Verifier) verify(raw string) (Principal, *AuthError) {
	if raw == "" {
		return Principal{}, &AuthError{Reason: AuthReasonMissingToken, Msg: "empty bearer token"}
	}
	if len(raw) > MaxTokenLength {
		return Principal{}, &AuthError{Reason: AuthReasonMalformed, Msg: fmt.Sprintf("token longer than %d bytes", MaxTokenLength)}
	}
	claims := jwt.MapClaims{}
	tok, err := v.parser.ParseWithClaims(raw, claims, v.keyFunc)
	if err != nil {
		return Principal{}, v.classify(tok, claims, err)
	}
	if _, ok := tok.Header["crit"]; ok {
		return Principal{}, &AuthError{Reason: AuthReasonMalformed, Msg: "token header has a crit parameter, which Luminate does not support"}
	}

	tc, _ := claims[v.tenantClaim].(string)
	tenant, err := ParseID(tc)
	if err != nil {
		return Principal{}, &AuthError{Reason: AuthReasonTenant,
			Msg: fmt.Sprintf("token claim %q is missing or not a valid tenant id ([A-Za-z0-9_.-]{1,128})", v.tenantClaim)}
	}
	scopes, ok := scopesOf(claims)
	if !ok {
		return Principal{}, &AuthError{Reason: AuthReasonClaims, Msg: `token claim "scope" must be a string and "scopes" an array of strings`}
	}
	sub, _ := claims["sub"].(string)
	return Principal{Tenant: tenant, Scopes: scopes, Subject: sub}, nil
}

// classify turns a jwt parse error into an AuthError with a fixed message.
func (v *Verifier) classify(tok *jwt.Token, claims jwt.MapClaims, err error) *AuthError {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return &AuthError{Reason: AuthReasonMalformed, Msg: "malformed token"}
	}
	if tok != nil {
		alg, ok := tok.Header["alg"].(string)
		if !ok {
			return &AuthError{Reason: AuthReasonMalformed, Msg: "token header has no alg"}
		}
		if !slices.Contains(v.methods, alg) || errors.Is(err, errAlgKey) {
			return &AuthError{Reason: AuthReasonAlgorithm,
				Msg: "token algorithm is not allowed for the configured keys (allowed: " + strings.Join(v.methods, ", ") + ")"}
		}
	}
	switch {
	case errors.Is(err, errUnknownKey):
		return &AuthError{Reason: AuthReasonUnknownKey, Msg: "token kid names no configured key"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return &AuthError{Reason: AuthReasonSignature, Msg: "token signature is invalid"}
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return &AuthError{Reason: AuthReasonMalformed, Msg: "malformed token"}
	case errors.Is(err, jwt.ErrInvalidType):
		return &AuthError{Reason: AuthReasonClaims, Msg: "token has a registered claim (exp, nbf, iat, iss or aud) of the wrong type"}
	case claims["exp"] == nil:
		return &AuthError{Reason: AuthReasonMissingExp, Msg: "token has no exp claim"}
	case errors.Is(err, jwt.ErrTokenExpired):
		return &AuthError{Reason: AuthReasonExpired, Msg: "token has expired"}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &AuthError{Reason: AuthReasonNotYetValid, Msg: "token is not valid yet (nbf or iat in the future)"}
	case v.issuer != "" && !hasIssuer(claims, v.issuer):
		return &AuthError{Reason: AuthReasonIssuer, Msg: fmt.Sprintf("token issuer is not %q", v.issuer)}
	case v.audience != "" && !hasAudience(claims, v.audience):
		return &AuthError{Reason: AuthReasonAudience, Msg: fmt.Sprintf("token audience does not include %q", v.audience)}
	}
	return &AuthError{Reason: AuthReasonClaims, Msg: "token claims are invalid"}
}

func hasIssuer(claims jwt.MapClaims, want string) bool {
	iss, err := claims.GetIssuer()
	return err == nil && iss == want
}

func hasAudience(claims jwt.MapClaims, want string) bool {
	aud, err := claims.GetAudience()
	return err == nil && slices.Contains(aud, want)
}

// scopesOf reads the scopes of claims from "scope" (a space-separated
// string, RFC 8693) and "scopes" (an array of strings, or a string).
// Scopes Luminate does not know are ignored. ok is false if a claim has
// the wrong type.
func scopesOf(claims jwt.MapClaims) (scopes []Scope, ok bool) {
	var names []string
	for _, claim := range []string{"scope", "scopes"} {
		switch c := claims[claim].(type) {
		case nil:
		case string:
			names = append(names, strings.Fields(c)...)
		case []any:
			if claim == "scope" {
				return nil, false
			}
			for _, e := range c {
				s, isString := e.(string)
				if !isString {
					return nil, false
				}
				names = append(names, s)
			}
		default:
			return nil, false
		}
	}
	for _, n := range names {
		s := Scope(n)
		if slices.Contains(Scopes(), s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes, true
}

// RequireScope returns an error wrapping ErrPermissionDenied, naming the
// scope, unless p was granted s (admin grants every scope but operator).
func RequireScope(p Principal, s Scope) error {
	if p.Has(s) {
		return nil
	}
	return fmt.Errorf("%w: the token of tenant %s lacks scope %q", ErrPermissionDenied, p.Tenant, s)
}
