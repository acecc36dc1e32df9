// Package fieldpath checks a decoded YAML or JSON document against the Go
// type it will be decoded into, so strict parsers (a Release, a
// RunnerPool) refuse unknown keys and unreadable values naming the field's
// path, e.g. "spec.schedules[0].timeZone"; encoding/json drops the first
// silently and reports the second without a path.
package fieldpath

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Error names the field at fault and why.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// Check walks doc (as decoded into any: maps, slices, scalars) along t and
// returns the first unknown key (in sorted order) or value a custom
// json.Unmarshaler of t refuses; nil when there is none. Type mismatches of
// plain values are left to json.Unmarshal, which names them itself.
func Check(doc any, t reflect.Type) *Error { return check(doc, t, "") }

func check(v any, t reflect.Type, path string) *Error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if v == nil {
			return nil
		}
		b, _ := json.Marshal(v)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(b); err != nil {
			return &Error{Path: path, Err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			p := join(path, k)
			ft, ok := fields[k]
			if !ok {
				return &Error{Path: p, Err: fmt.Errorf("unknown field %q; known fields here: %s", k, strings.Join(sortedKeys(fields), ", "))}
			}
			if err := check(m[k], ft, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		items, _ := v.([]any)
		for i, item := range items {
			if err := check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for _, k := range sortedKeys(m) {
			if err := check(m[k], t.Elem(), join(path, k)); err != nil {
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
// flattened, untagged fields by their Go name) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
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

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
