package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/analysis"
)

// Parse reads a Release from YAML or JSON, strictly: an unknown field, a
// value of the wrong type or an invalid value is refused with the path of
// the field at fault. Unset fields get their defaults. A status in the
// document is ignored, as the Kubernetes API server ignores it on create.
func Parse(data []byte) (Release, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Release{}, fmt.Errorf("%w: not valid YAML or JSON: %w", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return Release{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return Release{}, fmt.Errorf("%w: the document must be a mapping with apiVersion, kind, metadata and spec", ErrInvalid)
	}
	if err := checkFields(doc, reflect.TypeFor[Release](), ""); err != nil {
		return Release{}, err
	}
	r := Release{Spec: Spec{Analysis: analysis.DefaultConfig()}}
	if err := json.Unmarshal(js, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Release{}, invalid(te.Field, "want a %s, got a JSON %s", te.Type, te.Value)
		}
		return Release{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.Status = Status{}
	r.Default()
	if err := r.Validate(); err != nil {
		return Release{}, err
	}
	return r, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// checkFields walks a decoded document along the Go type it will be
// decoded into and refuses keys the type does not have, naming their path.
func checkFields(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if v == nil {
			return nil
		}
		b, _ := json.Marshal(v)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			return &FieldError{Path: path, Err: fmt.Errorf("%w: %w", ErrInvalid, err)}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil // json.Unmarshal reports the type mismatch with its path
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			p := join(path, k)
			if !ok {
				return &FieldError{Path: p, Err: fmt.Errorf("%w: unknown field %q; known fields here: %s", ErrInvalid, k, strings.Join(sortedKeys(fields), ", "))}
			}
			if err := checkFields(m[k], ft, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, item := range items {
			if err := checkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for k, item := range m {
			if err := checkFields(item, t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonFields maps the JSON names of a struct's fields (embedded structs
// flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ResolvePaths rewrites a Release document's relative spec.source and
// spec.binary as paths under base (the spec file's directory), so a spec
// means the same wherever the command that sends it runs. The document
// comes back as JSON; one that cannot be read is returned unchanged for
// Parse to refuse with its field.
func ResolvePaths(data []byte, base string) ([]byte, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return data, nil
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		return data, nil
	}
	spec, ok := doc["spec"].(map[string]any)
	if !ok {
		return data, nil
	}
	for _, k := range []string{"source", "binary"} {
		p, ok := spec[k].(string)
		if !ok || p == "" || filepath.IsAbs(p) {
			continue
		}
		abs, err := filepath.Abs(filepath.Join(base, p))
		if err != nil {
			return nil, fmt.Errorf("spec.%s %q: %w", k, p, err)
		}
		spec[k] = abs
	}
	return json.Marshal(doc)
}
