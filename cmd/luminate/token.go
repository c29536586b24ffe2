package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/luminate-io/luminate/tenancy"
)

// tokenConfig is what `luminate token` is configured with.
type tokenConfig struct {
	hmacSecretFile string
	privateKeyFile string
	method         string
	tenant         string
	scopes         string
	ttl            time.Duration
	issuer         string
	audience       string
	subject        string
}

func newTokenFlags(c *tokenConfig, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("luminate token", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.hmacSecretFile, "auth.jwt.hmac-secret-file", "", "File holding the shared HMAC secret the server verifies tokens with (the same file as serve's flag).")
	fs.StringVar(&c.privateKeyFile, "auth.jwt.private-key-file", "", "PEM private key to sign with instead of an HMAC secret (needs --method).")
	fs.StringVar(&c.method, "method", "", "Signing algorithm: HS256 (the default with an HMAC secret), HS384, HS512, RS256, PS256, ES256, EdDSA, ...")
	fs.StringVar(&c.tenant, "tenant", "", "Tenant ID the token is for ([A-Za-z0-9_.-]{1,128}). Required.")
	fs.StringVar(&c.scopes, "scopes", string(tenancy.ScopeWrite)+","+string(tenancy.ScopeRead), "Comma-separated scopes: metrics:write, metrics:read, admin (a tenant's: all its data), operator (the process's, for who runs Luminate and Prometheus scraping it: /metrics, which names every tenant, the detailed health report, /debug/pprof/; not implied by admin).")
	fs.DurationVar(&c.ttl, "ttl", 24*time.Hour, "How long the token is valid.")
	fs.StringVar(&c.issuer, "auth.jwt.issuer", "", "iss claim to set (must match the server's --auth.jwt.issuer if it has one).")
	fs.StringVar(&c.audience, "auth.jwt.audience", "", "aud claim to set (must match the server's --auth.jwt.audience if it has one).")
	fs.StringVar(&c.subject, "subject", "", "sub claim to set: who holds the token, named in the audit lines of admin calls.")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: luminate token --auth.jwt.hmac-secret-file=FILE --tenant=NAME [flags]\n\nPrints a signed token, and nothing else, on stdout. Flags:\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// runToken mints a token and prints it on stdout, alone on its line.
func runToken(args []string, stdout, stderr io.Writer) error {
	c := &tokenConfig{}
	if err := parseFlags(newTokenFlags(c, stderr), args); err != nil {
		return err
	}
	var key []byte
	var err error
	switch {
	case c.hmacSecretFile != "" && c.privateKeyFile != "":
		return usageError{errors.New("give either --auth.jwt.hmac-secret-file or --auth.jwt.private-key-file, not both")}
	case c.hmacSecretFile != "":
		key, err = tenancy.LoadHMACSecret(c.hmacSecretFile)
	case c.privateKeyFile != "":
		if c.method == "" {
			return usageError{errors.New("--auth.jwt.private-key-file needs --method (e.g. RS256, ES256, EdDSA)")}
		}
		key, err = os.ReadFile(c.privateKeyFile)
	default:
		return usageError{errors.New("--auth.jwt.hmac-secret-file (or --auth.jwt.private-key-file) is required")}
	}
	if err != nil {
		return err
	}
	if c.tenant == "" {
		return usageError{errors.New("--tenant is required")}
	}
	tenant, err := tenancy.ParseID(c.tenant)
	if err != nil {
		return usageError{fmt.Errorf("--tenant: %w", err)}
	}
	var scopes []tenancy.Scope
	for s := range strings.SplitSeq(c.scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			scopes = append(scopes, tenancy.Scope(s))
		}
	}
	tok, err := tenancy.MintSubject(key, c.method, tenant, c.subject, scopes, c.ttl, c.issuer, c.audience, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// tokenCommand is the command line with which program mints a development
// token with the secret in file.
func tokenCommand(program, file string) string {
	return shellQuote(program) + " token --auth.jwt.hmac-secret-file=" + shellQuote(file) + " --tenant=dev --scopes=metrics:read,metrics:write"
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
