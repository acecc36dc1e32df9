// Package inventory reads the fleet of service repositories a platform team
// owns (fleet.yaml), brings each one onto disk (a local path, or a Git URL
// cloned into a cache) and reports what each is made of: its template and
// kit versions and how far behind they are, its Go version, the known
// vulnerabilities in its module graph, its owner and its last release.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Entry is one service repository of fleet.yaml: exactly one of Path (a
// directory, relative to the fleet file) and Git (a clone URL) is set.
type Entry struct {
	// Name overrides the service's name (default: .pave.yaml's, else the
	// last element of Path or Git).
	Name string `json:"name,omitempty"`
	Path string `json:"path,omitempty"`
	Git  string `json:"git,omitempty"`
	// Ref is the branch, tag or commit of Git to read (default: the
	// remote's default branch).
	Ref string `json:"ref,omitempty"`
	// Line is where the entry starts in the fleet file, for messages.
	Line int `json:"-"`
}

// Label names the entry for reports: its name, else its path or URL.
func (e Entry) Label() string {
	switch {
	case e.Name != "":
		return e.Name
	case e.Path != "":
		return path.Base(strings.TrimRight(e.Path, "/"))
	default:
		u := strings.TrimRight(e.Git, "/")
		u = strings.TrimSuffix(u, ".git")
		if i := strings.LastIndexAny(u, "/:"); i >= 0 {
			u = u[i+1:]
		}
		return u
	}
}

// File is a parsed fleet.yaml.
type File struct {
	Services []Entry `json:"services"`
}

// ParseError names the line and field of a fleet file at fault.
type ParseError struct {
	Line  int
	Field string
	Err   error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

func perr(n *yaml.Node, field, format string, args ...any) *ParseError {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

var entryFields = []string{"name", "path", "git", "ref"}

// Parse reads a fleet file strictly: unknown keys, wrong types, duplicate
// services and entries with neither or both of path and git are refused,
// each error naming its line and field.
func Parse(data []byte) (File, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return File{}, &ParseError{Err: errors.New("empty fleet file: want `services:` with a list of {path: DIR} or {git: URL, ref: BRANCH}")}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return File{}, &ParseError{Err: fmt.Errorf("not YAML: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return File{}, perr(&extra, "", "a second YAML document: a fleet file holds one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return File{}, perr(root, "", "want a mapping with the key services")
	}
	var f File
	var services *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "services" {
			return File{}, perr(k, k.Value, "unknown field; known fields here: services")
		}
		if services != nil {
			return File{}, perr(k, "services", "given twice")
		}
		services = v
	}
	if services == nil {
		return File{}, perr(root, "services", "missing: list the service repositories, e.g. services: [{path: ./orders}]")
	}
	if services.Kind != yaml.SequenceNode {
		return File{}, perr(services, "services", "want a list of entries, got %s", kindName(services))
	}
	seen := map[string]int{}
	for i, item := range services.Content {
		field := fmt.Sprintf("services[%d]", i)
		e, err := parseEntry(item, field)
		if err != nil {
			return File{}, err
		}
		key := e.Path
		if e.Git != "" {
			key = e.Git + "@" + e.Ref
		}
		if prev, ok := seen[key]; ok {
			return File{}, perr(item, field, "the same repository as line %d", prev)
		}
		seen[key] = e.Line
		f.Services = append(f.Services, e)
	}
	names := map[string]int{}
	for _, e := range f.Services {
		if prev, ok := names[e.Label()]; ok {
			return File{}, &ParseError{Line: e.Line, Field: "name", Err: fmt.Errorf("%q is also the name of the service at line %d: give one of them another name: field", e.Label(), prev)}
		}
		names[e.Label()] = e.Line
	}
	return f, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	default:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
}

func parseEntry(n *yaml.Node, field string) (Entry, error) {
	if n.Kind != yaml.MappingNode {
		return Entry{}, perr(n, field, "want a mapping such as {path: ./orders} or {git: URL, ref: main}, got %s", kindName(n))
	}
	e := Entry{Line: n.Line}
	set := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		if set[k.Value] {
			return Entry{}, perr(k, f, "given twice")
		}
		set[k.Value] = true
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			if !isKnown(k.Value) {
				return Entry{}, perr(k, f, "unknown field; known fields here: %s", strings.Join(entryFields, ", "))
			}
			return Entry{}, perr(v, f, "want a string, got %s", kindName(v))
		}
		val := v.Value
		if strings.TrimSpace(val) != val || val == "" || strings.ContainsAny(val, "\x00\n\r") {
			return Entry{}, perr(v, f, "%q: want a non-empty value without surrounding spaces or line breaks", val)
		}
		switch k.Value {
		case "name":
			e.Name = val
		case "path":
			e.Path = val
		case "git":
			if err := checkGitURL(val); err != nil {
				return Entry{}, perr(v, f, "%v", err)
			}
			e.Git = val
		case "ref":
			if strings.HasPrefix(val, "-") || strings.Contains(val, "..") || strings.ContainsAny(val, " ~^:?*[\\") {
				return Entry{}, perr(v, f, "%q is not a usable Git branch, tag or commit", val)
			}
			e.Ref = val
		default:
			return Entry{}, perr(k, f, "unknown field; known fields here: %s", strings.Join(entryFields, ", "))
		}
	}
	switch {
	case e.Path == "" && e.Git == "":
		return Entry{}, perr(n, field, "want one of path (a directory) and git (a clone URL)")
	case e.Path != "" && e.Git != "":
		return Entry{}, perr(n, field, "both path and git: give one")
	case e.Ref != "" && e.Git == "":
		return Entry{}, perr(n, field+".ref", "ref goes with git, not path")
	}
	if e.Name != "" && (strings.ContainsAny(e.Name, "/\\") || e.Name == "." || e.Name == "..") {
		return Entry{}, perr(n, field+".name", "%q: want a service name without slashes", e.Name)
	}
	return e, nil
}

func isKnown(k string) bool {
	for _, f := range entryFields {
		if f == k {
			return true
		}
	}
	return false
}

// checkGitURL accepts what git clone does for remote repositories:
// https, http, ssh, git and file URLs, and scp-like user@host:path.
func checkGitURL(s string) error {
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("%q: a URL cannot start with '-'", s)
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && strings.Contains(s, "://") {
		switch u.Scheme {
		case "https", "http", "ssh", "git", "file":
			if u.Scheme != "file" && u.Host == "" {
				return fmt.Errorf("%q: no host", s)
			}
			return nil
		}
		return fmt.Errorf("%q: scheme %q is not one git clones from (https, ssh, git, file)", s, u.Scheme)
	}
	if at, colon := strings.Index(s, "@"), strings.Index(s, ":"); at > 0 && colon > at+1 && colon < len(s)-1 {
		return nil // git@github.com:org/repo.git
	}
	return fmt.Errorf("%q is not a Git URL (https://…, ssh://…, file://… or user@host:path); for a local directory use path:", s)
}
