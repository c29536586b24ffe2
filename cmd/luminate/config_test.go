package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// testFlags is a small flag set shaped like serve's: dotted names sharing
// prefixes, and the value types serve uses.
type testFlags struct {
	fs        *flag.FlagSet
	addr      string
	path      string
	backend   string
	retention model.Duration
	disabled  bool
	timeout   time.Duration
	scopes    string
	limit     int
}

func newTestFlags() *testFlags {
	t := &testFlags{fs: flag.NewFlagSet("test", flag.ContinueOnError), retention: model.Duration(90 * 24 * time.Hour)}
	t.fs.SetOutput(io.Discard)
	t.fs.String(configFileFlag, "", "config file")
	t.fs.StringVar(&t.addr, "http.listen-address", ":9201", "")
	t.fs.StringVar(&t.path, "storage.badger.path", "./data", "")
	t.fs.StringVar(&t.backend, "storage.backend", "badger", "")
	t.fs.Var(&t.retention, "storage.retention", "")
	t.fs.BoolVar(&t.disabled, "auth.disabled", false, "")
	t.fs.DurationVar(&t.timeout, "http.shutdown-timeout", 30*time.Second, "")
	t.fs.StringVar(&t.scopes, "auth.scopes", "", "")
	t.fs.IntVar(&t.limit, "limits.max-series", 0, "")
	return t
}

func TestApplyConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		yaml    string
		wantErr []string // substrings of the error; nil means success
		check   func(t *testing.T, f *testFlags)
	}{
		{
			name: "nested keys",
			yaml: "storage:\n  badger:\n    path: /x\n  retention: 2w\nhttp:\n  listen-address: 127.0.0.1:1\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "/x", f.path)
				require.Equal(t, model.Duration(14*24*time.Hour), f.retention)
				require.Equal(t, "127.0.0.1:1", f.addr)
			},
		},
		{
			name: "dotted keys",
			yaml: "storage.badger.path: /x\nstorage.retention: 1y\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "/x", f.path)
				require.Equal(t, model.Duration(365*24*time.Hour), f.retention)
			},
		},
		{
			name: "mixed nesting",
			yaml: "storage:\n  badger.path: /y\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "/y", f.path)
			},
		},
		{
			name: "flags win over the file",
			args: []string{"--storage.badger.path=/cli"},
			yaml: "storage: {badger: {path: /file}, backend: clickhouse}\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "/cli", f.path)
				require.Equal(t, "clickhouse", f.backend)
			},
		},
		{
			name: "flag given with its default value still wins",
			args: []string{"--storage.backend=badger"},
			yaml: "storage.backend: clickhouse\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "badger", f.backend)
			},
		},
		{
			name: "typed values",
			yaml: "auth.disabled: true\nhttp.shutdown-timeout: 5s\nlimits.max-series: 1000\nstorage.retention: 0\n",
			check: func(t *testing.T, f *testFlags) {
				require.True(t, f.disabled)
				require.Equal(t, 5*time.Second, f.timeout)
				require.Equal(t, 1000, f.limit)
				require.Equal(t, model.Duration(0), f.retention)
			},
		},
		{
			name: "list joined with commas",
			yaml: "auth:\n  scopes: [metrics:read, metrics:write]\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "metrics:read,metrics:write", f.scopes)
			},
		},
		{
			name: "empty string value",
			yaml: "storage.badger.path: \"\"\n",
			check: func(t *testing.T, f *testFlags) {
				require.Equal(t, "", f.path)
			},
		},
		{name: "empty file", yaml: "", check: func(t *testing.T, f *testFlags) { require.Equal(t, "./data", f.path) }},
		{name: "only comments", yaml: "# nothing\n", check: func(t *testing.T, f *testFlags) { require.Equal(t, "./data", f.path) }},
		{
			name:    "unknown key names the key and a suggestion",
			yaml:    "storage:\n  badger:\n    paht: /x\n",
			wantErr: []string{`line 3: unknown key "storage.badger.paht"`, `did you mean "storage.badger.path"`},
		},
		{
			name:    "unknown top-level key",
			yaml:    "nonsense: 1\n",
			wantErr: []string{`unknown key "nonsense"`},
		},
		{
			name:    "a namespace is not a flag",
			yaml:    "storage: badger\n",
			wantErr: []string{`unknown key "storage"`},
		},
		{
			name:    "config.file cannot be set from the file",
			yaml:    "config.file: other.yml\n",
			wantErr: []string{`unknown key "config.file"`},
		},
		{
			name:    "bad value names the key",
			yaml:    "storage.retention: forever\n",
			wantErr: []string{"line 1: storage.retention:"},
		},
		{
			name:    "keys given as flags are skipped, the others still checked",
			args:    []string{"--storage.retention=1d"},
			yaml:    "storage.retention: 1d\nlimits.max-series: lots\n",
			wantErr: []string{"limits.max-series"},
		},
		{
			name:    "all errors reported together",
			yaml:    "a: 1\nb: 2\n",
			wantErr: []string{`unknown key "a"`, `unknown key "b"`},
		},
		{
			name:    "same key twice through nesting",
			yaml:    "storage.badger.path: /a\nstorage:\n  badger:\n    path: /b\n",
			wantErr: []string{"storage.badger.path: already set on line 1"},
		},
		{
			name:    "null value",
			yaml:    "storage.badger.path:\n",
			wantErr: []string{"storage.badger.path: no value"},
		},
		{
			name:    "aliases rejected",
			yaml:    "storage.backend: &b badger\nstorage.badger.path: *b\n",
			wantErr: []string{"anchors and aliases are not supported"},
		},
		{
			name:    "nested list rejected",
			yaml:    "auth.scopes: [[a]]\n",
			wantErr: []string{"a list may hold only plain values"},
		},
		{
			name:    "top level must be a mapping",
			yaml:    "- a\n- b\n",
			wantErr: []string{"top level must be a mapping"},
		},
		{
			name:    "invalid YAML",
			yaml:    "storage: [\n",
			wantErr: []string{"parse YAML"},
		},
		{
			name:    "two documents",
			yaml:    "storage.backend: badger\n---\nstorage.backend: clickhouse\n",
			wantErr: []string{"exactly one document"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFlags()
			require.NoError(t, f.fs.Parse(tc.args))
			err := applyConfig(f.fs, "test.yml", []byte(tc.yaml))
			if tc.wantErr != nil {
				require.Error(t, err)
				for _, s := range tc.wantErr {
					require.Contains(t, err.Error(), s)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, f)
		})
	}
}

func TestApplyConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "luminate.yml")
	require.NoError(t, os.WriteFile(path, []byte("storage.badger.path: /from-file\n"), 0o600))
	f := newTestFlags()
	require.NoError(t, applyConfigFile(f.fs, path))
	require.Equal(t, "/from-file", f.path)

	err := applyConfigFile(f.fs, filepath.Join(dir, "missing.yml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	big := make([]byte, maxConfigFileSize+1)
	require.NoError(t, os.WriteFile(path, big, 0o600))
	require.ErrorContains(t, applyConfigFile(newTestFlags().fs, path), "larger than")
}

// FuzzConfig feeds arbitrary files to the config loader: it must never
// panic, and a file it accepts must leave every flag it names parseable and
// be accepted again with the same result.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"storage:\n  badger:\n    path: /x\n",
		"storage.badger.path: /x\nstorage.retention: 90d\n",
		"auth.scopes: [a, b]\n",
		"a: &x [1]\nb: *x\n",
		"storage: {badger: {path: ~}}\n",
		"- 1\n",
		"{? [a]: b}\n",
		"limits.max-series: 10\nauth.disabled: yes\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		first := newTestFlags()
		if err := applyConfig(first.fs, "fuzz.yml", data); err != nil {
			return
		}
		second := newTestFlags()
		require.NoError(t, applyConfig(second.fs, "fuzz.yml", data))
		first.fs.VisitAll(func(fl *flag.Flag) {
			require.Equal(t, fl.Value.String(), second.fs.Lookup(fl.Name).Value.String(), fl.Name)
		})
	})
}
