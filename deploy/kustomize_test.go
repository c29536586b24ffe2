package deploy

// A resolver for the part of kustomize that deploy/kubernetes uses, so the
// invariant tests run on what `kubectl apply -k` would apply, without
// kustomize: resources (files and directories), configMapGenerator
// (create and replace, files only), images, and patches that are either
// JSON 6902 operation lists (add, remove, replace) or a `$patch: delete`
// of a whole object. Anything else in a kustomization.yaml is an error, so
// a new feature cannot be silently ignored. Generated ConfigMaps keep their
// plain names (kustomize appends a content hash; references stay
// consistent either way). When kubectl is installed, TestKustomizeResolver
// checks this resolver against `kubectl kustomize`.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// object is one Kubernetes resource as decoded YAML.
type object = map[string]any

type kustomization struct {
	APIVersion         string        `yaml:"apiVersion"`
	Kind               string        `yaml:"kind"`
	Resources          []string      `yaml:"resources"`
	ConfigMapGenerator []cmGenerator `yaml:"configMapGenerator"`
	Images             []imageEntry  `yaml:"images"`
	Patches            []patchEntry  `yaml:"patches"`
}

type cmGenerator struct {
	Name     string   `yaml:"name"`
	Behavior string   `yaml:"behavior"`
	Files    []string `yaml:"files"`
	Options  struct {
		DisableNameSuffixHash bool `yaml:"disableNameSuffixHash"`
	} `yaml:"options"`
}

type imageEntry struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
}

type patchEntry struct {
	Path   string `yaml:"path"`
	Target *struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"target"`
}

// kustomize resolves the kustomization in dir.
func kustomize(dir string) ([]object, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if k.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: kind %q", dir, k.Kind)
	}
	var objs []object
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var got []object
		if st.IsDir() {
			got, err = kustomize(p)
		} else {
			got, err = decodeObjects(p)
		}
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	for _, g := range k.ConfigMapGenerator {
		cm := object{"apiVersion": "v1", "kind": "ConfigMap", "metadata": object{"name": g.Name}, "data": object{}}
		for _, f := range g.Files {
			key, path, ok := strings.Cut(f, "=")
			if !ok {
				key, path = filepath.Base(f), f
			}
			content, err := os.ReadFile(filepath.Join(dir, path))
			if err != nil {
				return nil, err
			}
			cm["data"].(object)[key] = string(content)
		}
		i := indexOf(objs, "ConfigMap", g.Name)
		switch g.Behavior {
		case "", "create":
			if i >= 0 {
				return nil, fmt.Errorf("%s: ConfigMap %s generated twice", dir, g.Name)
			}
			objs = append(objs, cm)
		case "replace":
			if i < 0 {
				return nil, fmt.Errorf("%s: ConfigMap %s to replace does not exist", dir, g.Name)
			}
			objs[i] = cm
		default:
			return nil, fmt.Errorf("%s: configMapGenerator behavior %q is not supported here", dir, g.Behavior)
		}
	}
	for _, pe := range k.Patches {
		if objs, err = applyPatchFile(objs, filepath.Join(dir, pe.Path), pe); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	for _, im := range k.Images {
		for _, o := range objs {
			for _, c := range containersOf(o) {
				name, tag := splitImage(str(c["image"]))
				if name != im.Name {
					continue
				}
				if im.NewName != "" {
					name = im.NewName
				}
				if im.NewTag != "" {
					tag = im.NewTag
				}
				c["image"] = name
				if tag != "" {
					c["image"] = name + ":" + tag
				}
			}
		}
	}
	return objs, nil
}

func splitImage(image string) (name, tag string) {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// decodeObjects reads every YAML document of a file.
func decodeObjects(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeObjectsData(data, path)
}

func decodeObjectsData(data []byte, source string) ([]object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// decodeAny decodes every YAML document of data, whatever its shape.
func decodeAny(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, v)
		}
	}
}

func applyPatchFile(objs []object, path string, pe patchEntry) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch doc := doc.(type) {
	case []any: // JSON 6902
		if pe.Target == nil {
			return nil, fmt.Errorf("%s: a JSON 6902 patch needs a target", path)
		}
		i := indexOf(objs, pe.Target.Kind, pe.Target.Name)
		if i < 0 {
			return nil, fmt.Errorf("%s: target %s/%s not found", path, pe.Target.Kind, pe.Target.Name)
		}
		patched, err := applyJSON6902(objs[i], doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		objs[i] = patched.(object)
		return objs, nil
	case object: // strategic merge: only deleting an object is supported
		if doc["$patch"] != "delete" || len(doc) != 4 {
			return nil, fmt.Errorf("%s: only `$patch: delete` strategic merge patches are supported here", path)
		}
		i := indexOf(objs, str(doc["kind"]), name(doc))
		if i < 0 {
			return nil, fmt.Errorf("%s: object to delete not found", path)
		}
		return append(objs[:i:i], objs[i+1:]...), nil
	}
	return nil, fmt.Errorf("%s: not a patch", path)
}

// applyJSON6902 applies add, remove and replace operations (RFC 6902) to a
// copy of doc.
func applyJSON6902(doc any, ops []any) (any, error) {
	doc = deepCopy(doc)
	for _, o := range ops {
		op, ok := o.(object)
		if !ok {
			return nil, fmt.Errorf("operation %v is not a mapping", o)
		}
		path, err := parsePointer(str(op["path"]))
		if err != nil {
			return nil, err
		}
		value, hasValue := op["value"]
		switch kind := str(op["op"]); kind {
		case "add", "replace":
			if !hasValue {
				return nil, fmt.Errorf("%s %s: no value", kind, op["path"])
			}
			doc, err = setPointer(doc, path, deepCopy(value), kind == "add")
		case "remove":
			doc, err = removePointer(doc, path)
		default:
			return nil, fmt.Errorf("operation %q is not supported here", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op["op"], op["path"], err)
		}
	}
	return doc, nil
}

func parsePointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("path %q does not start with /", p)
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// setPointer sets the value at path: add inserts into arrays ("-" appends)
// and creates or overwrites a map key; replace requires the target to exist.
func setPointer(doc any, path []string, value any, add bool) (any, error) {
	if len(path) == 0 {
		return value, nil
	}
	parent, err := resolvePointer(doc, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch p := parent.(type) {
	case object:
		if _, ok := p[last]; !ok && !add {
			return nil, fmt.Errorf("no member %q to replace", last)
		}
		p[last] = value
		return doc, nil
	case []any:
		if add && last == "-" {
			return setPointer(doc, path[:len(path)-1], append(p, value), false)
		}
		i, err := arrayIndex(last, len(p), add)
		if err != nil {
			return nil, err
		}
		if !add {
			p[i] = value
			return doc, nil
		}
		grown := append(p[:i:i], append([]any{value}, p[i:]...)...)
		return setPointer(doc, path[:len(path)-1], grown, false)
	}
	return nil, fmt.Errorf("parent of %q is not a container", last)
}

func removePointer(doc any, path []string) (any, error) {
	if len(path) == 0 {
		return nil, errors.New("cannot remove the whole document")
	}
	parent, err := resolvePointer(doc, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch p := parent.(type) {
	case object:
		if _, ok := p[last]; !ok {
			return nil, fmt.Errorf("no member %q to remove", last)
		}
		delete(p, last)
		return doc, nil
	case []any:
		i, err := arrayIndex(last, len(p), false)
		if err != nil {
			return nil, err
		}
		return setPointer(doc, path[:len(path)-1], append(p[:i:i], p[i+1:]...), false)
	}
	return nil, fmt.Errorf("parent of %q is not a container", last)
}

func resolvePointer(doc any, path []string) (any, error) {
	cur := doc
	for _, s := range path {
		switch c := cur.(type) {
		case object:
			v, ok := c[s]
			if !ok {
				return nil, fmt.Errorf("no member %q", s)
			}
			cur = v
		case []any:
			i, err := arrayIndex(s, len(c), false)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q: not a container", s)
		}
	}
	return cur, nil
}

func arrayIndex(s string, n int, insert bool) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i > n || (i == n && !insert) {
		return 0, fmt.Errorf("array index %q out of range (length %d)", s, n)
	}
	return i, nil
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case object:
		out := make(object, len(v))
		for k, c := range v {
			out[k] = deepCopy(c)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, c := range v {
			out[i] = deepCopy(c)
		}
		return out
	}
	return v
}

// Accessors for decoded YAML.

func str(v any) string {
	s, _ := v.(string)
	return s
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(object)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func name(o object) string { return str(get(o, "metadata", "name")) }

func indexOf(objs []object, kind, n string) int {
	for i, o := range objs {
		if str(o["kind"]) == kind && name(o) == n {
			return i
		}
	}
	return -1
}

func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if str(o["kind"]) == kind {
			out = append(out, o)
		}
	}
	return out
}

// containersOf returns the containers of a workload's pod template.
func containersOf(o object) []object {
	var out []object
	for _, c := range list(get(o, "spec", "template", "spec", "containers")) {
		if m, ok := c.(object); ok {
			out = append(out, m)
		}
	}
	return out
}

func TestJSON6902(t *testing.T) {
	base := func() any {
		return object{"spec": object{"replicas": 3, "list": []any{"a", "b"}, "strategy": object{"type": "RollingUpdate"}}}
	}
	for _, tc := range []struct {
		name string
		ops  string
		want any
		err  string
	}{
		{"replace a member", `[{op: replace, path: /spec/replicas, value: 1}]`,
			object{"spec": object{"replicas": 1, "list": []any{"a", "b"}, "strategy": object{"type": "RollingUpdate"}}}, ""},
		{"replace an object", `[{op: replace, path: /spec/strategy, value: {type: Recreate}}]`,
			object{"spec": object{"replicas": 3, "list": []any{"a", "b"}, "strategy": object{"type": "Recreate"}}}, ""},
		{"append to a list", `[{op: add, path: /spec/list/-, value: c}]`,
			object{"spec": object{"replicas": 3, "list": []any{"a", "b", "c"}, "strategy": object{"type": "RollingUpdate"}}}, ""},
		{"insert into a list", `[{op: add, path: /spec/list/0, value: z}]`,
			object{"spec": object{"replicas": 3, "list": []any{"z", "a", "b"}, "strategy": object{"type": "RollingUpdate"}}}, ""},
		{"remove from a list and a map", `[{op: remove, path: /spec/list/1}, {op: remove, path: /spec/strategy}]`,
			object{"spec": object{"replicas": 3, "list": []any{"a"}}}, ""},
		{"add a new member", `[{op: add, path: /spec/new~1key, value: 1}]`,
			object{"spec": object{"replicas": 3, "list": []any{"a", "b"}, "strategy": object{"type": "RollingUpdate"}, "new/key": 1}}, ""},
		{"replace a missing member", `[{op: replace, path: /spec/missing, value: 1}]`, nil, "no member"},
		{"remove a missing member", `[{op: remove, path: /spec/missing}]`, nil, "no member"},
		{"index out of range", `[{op: remove, path: /spec/list/2}]`, nil, "out of range"},
		{"unsupported operation", `[{op: move, from: /spec/replicas, path: /spec/x}]`, nil, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []any
			require.NoError(t, yaml.Unmarshal([]byte(tc.ops), &ops))
			doc := base()
			got, err := applyJSON6902(doc, ops)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, base(), doc, "the input is not modified")
		})
	}
}

// hashSuffixRE matches the content hash kustomize appends to generated
// names.
var hashSuffixRE = regexp.MustCompile(`-[a-z0-9]{10}$`)

// TestKustomizeResolver compares the resolver with the real kustomize
// built into kubectl, when it is installed (it is not required: the
// invariant tests run on the resolver's output).
func TestKustomizeResolver(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed; the resolver is checked against kubectl kustomize where it is")
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			dir := filepath.Join("kubernetes", "overlays", overlay)
			out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
			require.NoError(t, err, "%s", out)
			theirs, err := decodeObjectsData(out, "kubectl kustomize "+dir)
			require.NoError(t, err)
			ours, err := kustomize(dir)
			require.NoError(t, err)

			// Undo the hash suffixes of generated names, everywhere.
			renamed := map[string]string{}
			for _, o := range theirs {
				if str(o["kind"]) == "ConfigMap" && hashSuffixRE.MatchString(name(o)) {
					renamed[name(o)] = hashSuffixRE.ReplaceAllString(name(o), "")
				}
			}
			var rename func(v any) any
			rename = func(v any) any {
				switch v := v.(type) {
				case object:
					for k, c := range v {
						v[k] = rename(c)
					}
				case []any:
					for i, c := range v {
						v[i] = rename(c)
					}
				case string:
					if n, ok := renamed[v]; ok {
						return n
					}
				}
				return v
			}
			for _, o := range theirs {
				rename(o)
			}
			sortObjects(theirs)
			sortObjects(ours)
			require.Equal(t, len(theirs), len(ours))
			for i := range theirs {
				if !reflect.DeepEqual(theirs[i], ours[i]) {
					a, _ := yaml.Marshal(theirs[i])
					b, _ := yaml.Marshal(ours[i])
					t.Errorf("%s/%s differs:\nkubectl kustomize:\n%s\nresolver:\n%s", theirs[i]["kind"], name(theirs[i]), a, b)
				}
			}
			// The invariants hold on kustomize's own output too.
			checkWorkload(t, theirs, overlay)
		})
	}
}

func sortObjects(objs []object) {
	sort.Slice(objs, func(i, j int) bool {
		a, b := str(objs[i]["kind"])+"/"+name(objs[i]), str(objs[j]["kind"])+"/"+name(objs[j])
		return a < b
	})
}
