package main

import (
	"flag"
	"io"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// placeholder is what a flag's value placeholder in --help may be: one
// word (flag.UnquoteUsage takes the first backquoted word of the usage,
// else the type's name), never a command line.
var placeholder = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// TestFlagHelpPlaceholders: every flag of serve and token shows a one-word
// value placeholder in --help (serve --help once showed
// "-auth.jwt.hmac-secret-file openssl rand -hex 32 > FILE").
func TestFlagHelpPlaceholders(t *testing.T) {
	for name, fs := range map[string]*flag.FlagSet{
		"serve": newServeFlags(&serveConfig{}, io.Discard),
		"token": newTokenFlags(&tokenConfig{}, io.Discard),
	} {
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			n++
			p, _ := flag.UnquoteUsage(f)
			if p == "" {
				return // a bool flag shows none
			}
			require.Regexp(t, placeholder, p, "%s --%s: the first backquoted word of its usage is its --help placeholder", name, f.Name)
		})
		require.NotZero(t, n, name)
	}
}
