// Command luminate runs Luminate, a multi-tenant long-term store for
// Prometheus metrics: `luminate serve` starts the server, `luminate token`
// mints a token, `luminate version` prints the build.
//
// This package is wiring only: flags, the config file, constructing the
// components of the other packages, starting and stopping them. It holds
// no protocol or storage logic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/common/version"
)

const usage = `Luminate is a multi-tenant long-term store for Prometheus metrics.

Usage:
  luminate serve [flags]     start the server (luminate serve --help lists the flags)
  luminate token [flags]     mint a signed token for a tenant (luminate token --help)
  luminate version           print the version
`

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs the subcommand in args and returns the exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr)
	case "token":
		err = runToken(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version.Print("luminate"))
	case "config-docs": // hidden: regenerates docs/configuration.md
		err = runConfigDocs(args, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "luminate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		if !errors.As(err, new(flagError)) { // the flag package printed those
			fmt.Fprintf(stderr, "luminate %s: %v\n", cmd, err)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "luminate %s: %v\n", cmd, err)
		return 1
	}
}

// usageError is a mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// flagError is an error the flag package already printed, with the usage.
type flagError struct{ error }

// parseFlags parses args into fs and refuses positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{flagError{err}}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))}
	}
	return nil
}
