package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// exampleConfig is the config file shown in docs/configuration.md. The
// generator applies it to the real flag set, so it cannot go stale.
const exampleConfig = `http:
  listen-address: ":9201"
storage:
  backend: badger
  retention: 90d
  badger:
    path: /var/lib/luminate
auth.jwt.hmac-secret-file: /etc/luminate/hmac.secret
log:
  level: info
  format: json
`

// runConfigDocs prints docs/configuration.md, generated from the real flag
// sets of serve and token.
func runConfigDocs(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("luminate config-docs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	doc, err := configDocs()
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, doc)
	return err
}

func configDocs() (string, error) {
	serve := newServeFlags(&serveConfig{}, io.Discard)
	if err := applyConfig(newServeFlags(&serveConfig{}, io.Discard), "example", []byte(exampleConfig)); err != nil {
		return "", fmt.Errorf("example config: %w", err)
	}
	token := newTokenFlags(&tokenConfig{}, io.Discard)

	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the flag definitions by ` + "`make docs`" + ` (luminate config-docs); do not edit.
     The test TestConfigurationDocs in cmd/luminate fails when this file drifts from the flags. -->

## luminate serve

Every flag of ` + "`luminate serve`" + ` can also be set in a YAML file named by ` + "`--config.file`" + `,
under the flag's name without the dashes, either nested or dotted (` + "`storage: {badger: {path: /x}}`" + `
and ` + "`storage.badger.path: /x`" + ` are the same key). Flags given on the command line win over
the file. A key that names no flag is an error, as is a key given twice; a list of plain values is
joined with commas. ` + "`--storage.retention`" + ` takes the units ms, s, m, h, d, w and y (` + "`90d`, `2w`, `1y`" + `);
the other durations are Go durations (` + "`30s`, `5m`, `2h`" + `).

Example:

` + "```yaml\n" + exampleConfig + "```\n\n")
	writeFlagTable(&b, serve)
	b.WriteString(`
## luminate token

` + "`luminate token`" + ` prints a signed token on stdout and nothing else, for example:

` + "```sh\nluminate token --auth.jwt.hmac-secret-file=./data/dev-hmac.secret --tenant=acme --scopes=metrics:read,metrics:write --ttl=24h\n```\n\n")
	writeFlagTable(&b, token)
	return b.String(), nil
}

func writeFlagTable(b *strings.Builder, fs *flag.FlagSet) {
	b.WriteString("| Flag | Default | Description |\n|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		def := "`" + f.DefValue + "`"
		if f.DefValue == "" {
			def = ""
		}
		usage := strings.ReplaceAll(strings.ReplaceAll(f.Usage, "|", `\|`), "\n", " ")
		fmt.Fprintf(b, "| `--%s` | %s | %s |\n", f.Name, def, usage)
	})
}
