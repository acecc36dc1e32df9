package inventory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/vuln/scan"
)

// Vuln is a known vulnerability of a module in a service's module graph.
type Vuln struct {
	ID      string `json:"id"`
	Module  string `json:"module"`
	Version string `json:"version,omitempty"`
	// FixedIn is the first version without it ("" when there is none yet).
	FixedIn string `json:"fixedIn,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// DBURL turns a vulnerability database given as a directory into the
// file:// URL govulncheck reads; URLs are returned as they are.
func DBURL(db string) (string, error) {
	if strings.Contains(db, "://") {
		return db, nil
	}
	abs, err := filepath.Abs(db)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "index", "modules.json")); err != nil {
		return "", fmt.Errorf("vulnerability database %s: no index/modules.json there (build one with scripts/deps.sh, or give a URL such as https://vuln.go.dev)", db)
	}
	return "file://" + filepath.ToSlash(abs), nil
}

// Scan runs golang.org/x/vuln's scanner over the module graph of the
// module in dir (govulncheck -scan module: every module required,
// whether its code is called or not, which is what a fleet-wide "who is
// exposed" question asks) against db.
func Scan(ctx context.Context, dir, db string) ([]Vuln, error) {
	u, err := DBURL(db)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := scan.Command(ctx, "-C", dir, "-db", u, "-scan", "module", "-json")
	cmd.Stdin = strings.NewReader("")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// The service's own go.mod decides: not the fleet file's workspace.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("vulnerability scan: %s", lastLines(msg, 3))
	}
	return parseFindings(&stdout)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// parseFindings reads govulncheck's JSON stream: osv messages describe
// advisories, finding messages place them in a module.
func parseFindings(r *bytes.Buffer) ([]Vuln, error) {
	type osv struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	}
	type frame struct {
		Module  string `json:"module"`
		Version string `json:"version"`
	}
	type message struct {
		OSV     *osv `json:"osv"`
		Finding *struct {
			OSV          string   `json:"osv"`
			FixedVersion string   `json:"fixed_version"`
			Trace        []*frame `json:"trace"`
		} `json:"finding"`
	}
	summaries := map[string]string{}
	seen := map[string]bool{}
	vulns := []Vuln{}
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("vulnerability scan output: %w", err)
		}
		if m.OSV != nil {
			summaries[m.OSV.ID] = m.OSV.Summary
		}
		if f := m.Finding; f != nil && len(f.Trace) > 0 {
			v := Vuln{ID: f.OSV, Module: f.Trace[0].Module, Version: f.Trace[0].Version, FixedIn: f.FixedVersion}
			key := v.ID + " " + v.Module
			if !seen[key] {
				seen[key] = true
				vulns = append(vulns, v)
			}
		}
	}
	for i := range vulns {
		vulns[i].Summary = summaries[vulns[i].ID]
	}
	sort.Slice(vulns, func(i, j int) bool {
		if vulns[i].ID != vulns[j].ID {
			return vulns[i].ID < vulns[j].ID
		}
		return vulns[i].Module < vulns[j].Module
	})
	return vulns, nil
}
