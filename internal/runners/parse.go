package runners

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/fieldpath"
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
	if fe := fieldpath.Check(doc, reflect.TypeFor[RunnerPool]()); fe != nil {
		return RunnerPool{}, &FieldError{Path: fe.Path, Err: fmt.Errorf("%w: %w", ErrInvalid, fe.Err)}
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
