package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"

	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/fieldpath"
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
	if fe := fieldpath.Check(doc, reflect.TypeFor[Release]()); fe != nil {
		return Release{}, &FieldError{Path: fe.Path, Err: fmt.Errorf("%w: %w", ErrInvalid, fe.Err)}
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
