package runners

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Parse reads a RunnerPool from YAML or JSON, strictly: an unknown field,
// a value of the wrong type or an invalid value (a cron expression that
// does not parse, an unknown time zone) is refused with the field's path.
// Unset fields get their defaults.
func Parse(data []byte) (RunnerPool, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return RunnerPool{}, fmt.Errorf("%w: not valid YAML or JSON: %w", ErrInvalid, err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return RunnerPool{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return RunnerPool{}, fmt.Errorf("%w: the document must be a mapping with apiVersion, kind, metadata and spec", ErrInvalid)
	}
	if err := knownFields(doc, reflect.TypeFor[RunnerPool](), ""); err != nil {
		return RunnerPool{}, err
	}
	var p RunnerPool
	if err := json.Unmarshal(js, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return RunnerPool{}, invalid(te.Field, "want a %s, got a JSON %s", te.Type, te.Value)
		}
		return RunnerPool{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	p.Default()
	if err := p.Validate(); err != nil {
		return RunnerPool{}, err
	}
	return p, nil
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// knownFields refuses keys the Go type has no field for, and values a
// custom type (Duration) cannot read, naming their path; json.Unmarshal
// would drop the first silently and report the second without a path.
func knownFields(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) {
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
			return nil // json.Unmarshal names the type mismatch
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				known := make([]string, 0, len(fields))
				for n := range fields {
					known = append(known, n)
				}
				slices.Sort(known)
				return &FieldError{Path: p, Err: fmt.Errorf("%w: unknown field %q; known fields here: %s", ErrInvalid, k, strings.Join(known, ", "))}
			}
			if err := knownFields(m[k], ft, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		items, _ := v.([]any)
		for i, item := range items {
			if err := knownFields(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}
