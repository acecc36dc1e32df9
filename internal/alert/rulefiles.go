package alert

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// PlatformSource is the in-memory rule source of the platform's own
// rules. Until something sets it (the SLO generator's PlatformRules) it
// holds the Watchdog alone.
const PlatformSource = "platform"

// sourcePrefix marks an in-memory source among the rule files: a group's
// "file" in the API is "source:NAME".
const sourcePrefix = "source:"

// watchdogRules always fire, so a receiver that stops hearing the
// Watchdog knows that alerting itself is dead.
var watchdogRules = []byte(`groups:
- name: pave-watchdog
  rules:
  - alert: Watchdog
    expr: vector(1)
    labels:
      severity: none
    annotations:
      summary: Alerting is working. This alert always fires; a receiver that stops receiving it knows the alerting pipeline is broken.
`)

// RuleFileError is a rule file refused at its last read: the file (or
// source:NAME), and the reason with the line and column rulefmt gives.
type RuleFileError struct {
	File string `json:"file"`
	Err  string `json:"error"`
}

// ruleSources are the rule files (the rule-files globs) and in-memory
// sources with the last version of each that parsed. It is the rules
// manager's GroupLoader: the manager loads the last good version, so a
// file that turns bad never stops the rules it held.
type ruleSources struct {
	globs  []string
	parser parser.Parser

	mu      sync.Mutex
	inMem   map[string][]byte              // source name -> content
	raw     map[string][]byte              // identifier -> content last parsed
	seen    map[string][]byte              // file -> content read at the previous refresh
	good    map[string]*rulefmt.RuleGroups // identifier -> last version that parsed
	refused map[string]string              // identifier -> why its current content is refused
	dirty   bool
}

func newRuleSources(globs []string) *ruleSources {
	return &ruleSources{globs: globs, parser: parser.NewParser(parser.Options{}), inMem: map[string][]byte{},
		raw: map[string][]byte{}, seen: map[string][]byte{}, good: map[string]*rulefmt.RuleGroups{}, refused: map[string]string{}}
}

// setSource replaces (or, with empty content, removes) an in-memory
// source; content that does not parse is refused.
func (s *ruleSources) setSource(name string, content []byte) error {
	if name == "" {
		return errors.New("alert: rule source without a name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := sourcePrefix + name
	if len(bytes.TrimSpace(content)) == 0 {
		delete(s.inMem, name)
		return nil
	}
	if _, err := s.parse(id, content); err != nil {
		return err
	}
	s.inMem[name] = slices.Clone(content)
	return nil
}

// parse validates content the way Prometheus loads a rule file: YAML,
// known fields only, every expression and template.
func (s *ruleSources) parse(id string, content []byte) (*rulefmt.RuleGroups, error) {
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, s.parser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, err := range errs {
			msgs[i] = err.Error()
		}
		return nil, fmt.Errorf("rule file %s: %s (line:column as given; the file's previous version keeps running)", id, strings.Join(msgs, "; "))
	}
	return rgs, nil
}

// refresh reads every file the globs match and every in-memory source,
// parses what changed, and reports whether the set of good versions
// changed and which files are refused.
//
// With settle, a file's new content is taken only once two successive
// reads agree: an editor or `cp` writing the file in several steps would
// otherwise hand over a truncated file that parses (an empty file is a
// valid rule file without rules) and drop the rules it held.
func (s *ruleSources) refresh(settle bool) (changed bool, refused []RuleFileError) {
	current := map[string][]byte{}
	var globErrs []RuleFileError
	for _, g := range s.globs {
		files, err := filepath.Glob(g)
		if err != nil {
			globErrs = append(globErrs, RuleFileError{File: g, Err: fmt.Sprintf("bad glob in setting rule-files: %v", err)})
			continue
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				globErrs = append(globErrs, RuleFileError{File: f, Err: err.Error()})
				continue
			}
			current[f] = b
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, b := range current {
		prev, seenBefore := s.seen[id]
		s.seen[id] = b
		old, parsed := s.raw[id]
		if !settle || parsed && bytes.Equal(old, b) || seenBefore && bytes.Equal(prev, b) {
			continue
		}
		// Changed since the previous read: wait for it to settle.
		if parsed {
			current[id] = old
		} else {
			delete(current, id)
		}
	}
	for id := range s.seen {
		if _, ok := current[id]; !ok {
			delete(s.seen, id)
		}
	}
	for name, b := range s.inMem {
		current[sourcePrefix+name] = b
	}
	changed = s.dirty
	s.dirty = false
	for id := range s.raw {
		if _, ok := current[id]; !ok {
			delete(s.raw, id)
			delete(s.refused, id)
			if _, ok := s.good[id]; ok {
				delete(s.good, id)
				changed = true
			}
		}
	}
	for id, b := range current {
		if old, ok := s.raw[id]; ok && bytes.Equal(old, b) {
			continue
		}
		s.raw[id] = b
		rgs, err := s.parse(id, b)
		if err != nil {
			s.refused[id] = err.Error()
			continue
		}
		delete(s.refused, id)
		s.good[id] = rgs
		changed = true
	}
	for id, why := range s.refused {
		refused = append(refused, RuleFileError{File: id, Err: why})
	}
	refused = append(refused, globErrs...)
	sort.Slice(refused, func(i, j int) bool { return refused[i].File < refused[j].File })
	return changed, refused
}

func (s *ruleSources) errors() []RuleFileError {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RuleFileError
	for id, why := range s.refused {
		out = append(out, RuleFileError{File: id, Err: why})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}

// identifiers are the files the manager loads: those with a good version.
func (s *ruleSources) identifiers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.good))
	for id := range s.good {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Load implements rules.GroupLoader with the last good version.
func (s *ruleSources) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rgs, ok := s.good[identifier]
	if !ok {
		return nil, []error{fmt.Errorf("rule file %s: not loaded", identifier)}
	}
	return rgs, nil
}

// Parse implements rules.GroupLoader.
func (s *ruleSources) Parse(query string) (parser.Expr, error) { return s.parser.ParseExpr(query) }
