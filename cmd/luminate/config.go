package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxConfigFileSize bounds the YAML file read by --config.file.
const maxConfigFileSize = 1 << 20

// configFileFlag names the flag that points at the YAML file; the file
// cannot set it.
const configFileFlag = "config.file"

// applyConfigFile reads the YAML file at path and applies it to fs; see
// applyConfig.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileSize+1))
	if err != nil {
		return fmt.Errorf("read config file %s: %w", path, err)
	}
	if len(data) > maxConfigFileSize {
		return fmt.Errorf("config file %s: larger than %d bytes", path, maxConfigFileSize)
	}
	if err := applyConfig(fs, path, data); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyConfig sets the flags of fs from a YAML document whose keys are the
// flag names, nested or dotted: `storage: {badger: {path: /x}}` and
// `storage.badger.path: /x` both set --storage.badger.path. Flags already
// given on the command line win, so the file only sets the others. Keys that
// name no flag, values a flag rejects, a key given twice, null values,
// anchors and aliases are errors naming the key and line; all of them are
// reported together. A list of scalars is joined with commas.
func applyConfig(fs *flag.FlagSet, source string, data []byte) error {
	entries, err := flattenYAML(data)
	if err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })

	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		e := entries[key]
		if key == configFileFlag || fs.Lookup(key) == nil {
			errs = append(errs, fmt.Errorf("line %d: unknown key %q%s", e.line, key, suggestKey(fs, key)))
			continue
		}
		if explicit[key] {
			continue
		}
		if err := fs.Set(key, e.value); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %w", e.line, key, err))
		}
	}
	return errors.Join(errs...)
}

// configEntry is one flattened key of a config file.
type configEntry struct {
	value string
	line  int
}

// flattenYAML turns a YAML mapping into dotted keys and string values.
func flattenYAML(data []byte) (map[string]configEntry, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string]configEntry{}, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse YAML: want exactly one document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return map[string]configEntry{}, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]configEntry{}, nil // a file of only comments
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the top level must be a mapping of flag names to values", root.Line)
	}
	out := map[string]configEntry{}
	if err := flattenMapping(root, "", out); err != nil {
		return nil, err
	}
	return out, nil
}

func flattenMapping(n *yaml.Node, prefix string, out map[string]configEntry) error {
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			errs = append(errs, fmt.Errorf("line %d: keys must be non-empty names", k.Line))
			continue
		}
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		if err := flattenValue(key, k.Line, v, out); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func flattenValue(key string, line int, v *yaml.Node, out map[string]configEntry) error {
	if v.Anchor != "" || v.Kind == yaml.AliasNode {
		return fmt.Errorf("line %d: %s: anchors and aliases are not supported", line, key)
	}
	var value string
	switch v.Kind {
	case yaml.MappingNode:
		return flattenMapping(v, key, out)
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return fmt.Errorf("line %d: %s: no value", line, key)
		}
		value = v.Value
	case yaml.SequenceNode:
		items := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || item.Anchor != "" {
				return fmt.Errorf("line %d: %s: a list may hold only plain values", item.Line, key)
			}
			items = append(items, item.Value)
		}
		value = strings.Join(items, ",")
	default:
		return fmt.Errorf("line %d: %s: unsupported value", line, key)
	}
	if prev, ok := out[key]; ok {
		return fmt.Errorf("line %d: %s: already set on line %d", line, key, prev.line)
	}
	out[key] = configEntry{value: value, line: line}
	return nil
}

// suggestKey names the flag an unknown key most likely meant, if any.
func suggestKey(fs *flag.FlagSet, key string) string {
	best, bestDist := "", len(key)/3+1
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == configFileFlag {
			return
		}
		if d := editDistance(key, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
