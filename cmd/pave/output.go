package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"
)

// The output formats every read takes with -o, as kubectl's do.
const (
	outText     = "text"
	outWide     = "wide"
	outJSON     = "json"
	outYAML     = "yaml"
	outName     = "name"
	outJSONPath = "jsonpath"
	outRaw      = "raw" // pave logs only: the messages alone
)

// outputFormat is a parsed -o value.
type outputFormat struct {
	kind     string
	template string // of jsonpath, checked by parseOutput
}

// jsonPath parses a template anew for each use: a JSONPath keeps the state
// of its {range} blocks between executions, so one that printed a list
// once fails the next time ("not in range, nothing to end"), as --watch
// prints again.
func jsonPath(template string) (*jsonpath.JSONPath, error) {
	p := jsonpath.New("output").AllowMissingKeys(true)
	if err := p.Parse(template); err != nil {
		return nil, fmt.Errorf("-o jsonpath template %q: %w", template, err)
	}
	return p, nil
}

// parseOutput reads -o: text, wide, json, yaml, name, raw or
// jsonpath=TEMPLATE (quotes around the template are optional).
func parseOutput(s string) (outputFormat, error) {
	switch s {
	case "", outText:
		return outputFormat{kind: outText}, nil
	case outWide, outJSON, outYAML, outName, outRaw:
		return outputFormat{kind: s}, nil
	}
	if tmpl, ok := strings.CutPrefix(s, "jsonpath="); ok {
		tmpl = strings.Trim(tmpl, `'"`)
		if tmpl == "" {
			return outputFormat{}, fmt.Errorf("-o jsonpath= needs a template, e.g. -o jsonpath='{.metadata.name}'")
		}
		if _, err := jsonPath(tmpl); err != nil {
			return outputFormat{}, err
		}
		return outputFormat{kind: outJSONPath, template: tmpl}, nil
	}
	return outputFormat{}, fmt.Errorf("-o %q: want text, wide, json, yaml, name or jsonpath=TEMPLATE (e.g. -o jsonpath='{.status.phase}')", s)
}

// machine reports whether the output is for programs (no text view).
func (f outputFormat) machine() bool {
	return f.kind != "" && f.kind != outText && f.kind != outWide
}

// write prints v in a machine format; text and wide are the caller's.
func (f outputFormat) write(w io.Writer, v any) error {
	switch f.kind {
	case outJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case outYAML:
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	case outName:
		data, err := generic(v)
		if err != nil {
			return err
		}
		items, ok := data.([]any)
		if !ok {
			items = []any{data}
		}
		for _, it := range items {
			if n := objectName(it); n != "" {
				fmt.Fprintln(w, n)
			}
		}
		return nil
	case outJSONPath:
		data, err := generic(v)
		if err != nil {
			return err
		}
		p, err := jsonPath(f.template)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := p.Execute(&buf, data); err != nil {
			return fmt.Errorf("-o jsonpath: %w", err)
		}
		if buf.Len() > 0 && !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
			buf.WriteByte('\n')
		}
		_, err = w.Write(buf.Bytes())
		return err
	}
	return fmt.Errorf("-o %s is not available here", f.kind)
}

// generic turns v into the maps and slices of its JSON form, which
// jsonpath and -o name read.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// objectName is KIND/NAME (release/shop-v2) or NAME for the objects of the
// API: metadata.name, else name, else service.
func objectName(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		if s, ok := v.(string); ok {
			return s
		}
		return ""
	}
	name := ""
	if md, ok := m["metadata"].(map[string]any); ok {
		name, _ = md["name"].(string)
	}
	for _, k := range []string{"name", "service", "id"} {
		if name == "" {
			name, _ = m[k].(string)
		}
	}
	if kind, _ := m["kind"].(string); kind != "" && name != "" {
		return strings.ToLower(kind) + "/" + name
	}
	return name
}
