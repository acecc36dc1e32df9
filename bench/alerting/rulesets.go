package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pave-platform/pave/internal/alert/slo"
)

// slothVersion is the Sloth release the comparison is made with; the
// bench refuses another one so the figures name what they measured.
const slothVersion = "v0.16.0"

// ruleSet is one rule set's rule files for each service.
type ruleSet struct {
	name  string
	files [][]string // by service
}

// ruleSets writes the files of the rule sets named in only under dir.
func ruleSets(ctx context.Context, dir string, services int, slothBin string, only []string) ([]ruleSet, error) {
	writers := map[string]func(name string) (string, error){
		"threshold": func(string) (string, error) {
			p := filepath.Join(dir, "threshold.yaml")
			return p, os.WriteFile(p, []byte(thresholdRules), 0o600)
		},
		// Sloth: its prometheus/v1 spec for the same SLO, as its README's
		// getting-started example writes one, through `sloth generate`.
		"sloth": func(name string) (string, error) {
			spec := filepath.Join(dir, "sloth-"+name+".spec.yaml")
			if err := os.WriteFile(spec, []byte(strings.ReplaceAll(slothSpec, "SVC", name)), 0o600); err != nil {
				return "", err
			}
			out := filepath.Join(dir, "sloth-"+name+".rules.yaml")
			if b, err := exec.CommandContext(ctx, slothBin, "generate", "-i", spec, "-o", out).CombinedOutput(); err != nil {
				return "", fmt.Errorf("sloth generate -i %s: %w\n%s", spec, err, b)
			}
			return out, nil
		},
		// Pave: the rules `pave up` loads for the service's .pave.yaml.
		"pave": func(name string) (string, error) {
			svc, err := slo.Parse(name, []byte(paveSLO))
			if err != nil {
				return "", err
			}
			b, err := slo.Rules(svc)
			if err != nil {
				return "", err
			}
			p := filepath.Join(dir, "pave-"+name+".yaml")
			return p, os.WriteFile(p, b, 0o600)
		},
	}
	var sets []ruleSet
	for _, n := range []string{"threshold", "sloth", "pave"} {
		if !slices.Contains(only, n) {
			continue
		}
		rs := ruleSet{name: n}
		for s := range services {
			f, err := writers[n](svcName(s))
			if err != nil {
				return nil, fmt.Errorf("%s rules: %w", n, err)
			}
			rs.files = append(rs.files, []string{f})
		}
		sets = append(sets, rs)
	}
	if len(sets) != len(only) {
		return nil, fmt.Errorf("-sets %s: want some of threshold, sloth, pave", strings.Join(only, ","))
	}
	return sets, nil
}

// thresholdRules: the plain threshold, error ratio over 5m > 1%
// for 5m.
const thresholdRules = `groups:
  - name: threshold
    rules:
      - alert: ErrorRatioHigh
        expr: |
          sum by (service) (rate(http_server_requests_total{status_class="5xx"}[5m]))
          /
          sum by (service) (rate(http_server_requests_total[5m])) > 0.01
        for: 5m
        labels:
          severity: page
`

// paveSLO is the slos block of each service's .pave.yaml.
const paveSLO = `slos:
  runbook: https://runbooks.example.com/bench
  availability:
    objective: 99.9
`

// slothSpec is the same SLO in Sloth's prometheus/v1 format (SVC is the
// service): 99.9% of requests without a 5xx over Sloth's default 30-day
// period, page and ticket alerts labelled by severity.
const slothSpec = `version: "prometheus/v1"
service: "SVC"
labels:
  owner: "bench"
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "99.9% of SVC's requests answer without a 5xx."
    sli:
      events:
        error_query: sum(rate(http_server_requests_total{service="SVC",status_class="5xx"}[{{.window}}]))
        total_query: sum(rate(http_server_requests_total{service="SVC"}[{{.window}}]))
    alerting:
      name: SVCHighErrorRate
      labels:
        category: "availability"
      annotations:
        summary: "High error rate on 'SVC' requests responses"
      page_alert:
        labels:
          severity: page
      ticket_alert:
        labels:
          severity: ticket
`

// findSloth returns Sloth's binary: $SLOTH, then PATH, then the tool cache
// scripts/deps.sh fills ($PAVE_TOOLS/bin, default ~/.cache/pave-tools/bin).
func findSloth() (bin, version string, err error) {
	var candidates []string
	if p := os.Getenv("SLOTH"); p != "" {
		candidates = append(candidates, p)
	}
	if p, err := exec.LookPath("sloth"); err == nil {
		candidates = append(candidates, p)
	}
	tools := os.Getenv("PAVE_TOOLS")
	if tools == "" {
		if c, err := os.UserCacheDir(); err == nil {
			tools = filepath.Join(c, "pave-tools")
		}
	}
	candidates = append(candidates, filepath.Join(tools, "bin", "sloth"))
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		// `sloth version` says "dev" when built by go install: the module
		// version is in the binary's build information.
		info, err := buildinfo.ReadFile(c)
		if err != nil {
			return "", "", fmt.Errorf("%s: not a Go binary with build information: %w", c, err)
		}
		v := info.Main.Path + "@" + info.Main.Version
		if info.Main.Path != "github.com/slok/sloth" || info.Main.Version != slothVersion {
			return "", "", fmt.Errorf("%s is Sloth %q, the comparison is with %s: run scripts/deps.sh (it installs github.com/slok/sloth/cmd/sloth@%s into the tool cache)", c, v, slothVersion, slothVersion)
		}
		return c, v, nil
	}
	return "", "", errors.New("sloth not found (looked at $SLOTH, PATH and " + filepath.Join(tools, "bin") + "): the bench compares Pave's rules with the rules Sloth " + slothVersion +
		" generates; run scripts/deps.sh, or GOBIN=" + filepath.Join(tools, "bin") + " go install github.com/slok/sloth/cmd/sloth@" + slothVersion)
}
