// Package bulkupgrade changes every service of the fleet at once, as a
// platform team does in the week of a library's security hole: per
// service, on a new branch, the three-way template upgrade of
// internal/scaffold and/or a kit bump, then go mod tidy, go build and
// go test, a commit and a pull request description. Nothing is pushed
// unless asked. Running it again changes nothing more.
package bulkupgrade

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/semver"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/scaffold"
)

// Outcomes of one service.
const (
	Clean       = "clean"        // upgraded, built and tested: ready to merge
	Conflicts   = "conflicts"    // committed with conflict markers a person resolves
	TestsFailed = "tests-failed" // tidy, build or tests failed after the change
	UpToDate    = "up-to-date"   // nothing to change
	Unchanged   = "unchanged"    // the branch already carries the change (a second run)
	Failed      = "error"        // not upgraded: not a service, dirty tree, unreachable remote...
	Skipped     = "skipped"      // left out by --only
)

// Options configure Run.
type Options struct {
	Sources *inventory.Sources
	// Only keeps the services whose name matches this glob (path.Match),
	// or with "owner=TEAM" those of one owner; "" keeps all.
	Only string
	// Template upgrades to this template version; 0 the newest, -1 none.
	Template int
	// Kit, when set, bumps the required kit to this version.
	Kit string
	// Branch is the branch made in each repository (default from the
	// change: pave/upgrade-template-vN[-kit-vX]).
	Branch string
	// Jobs bounds the services worked on at once (default 4).
	Jobs int
	// Push pushes each branch to its repository's origin.
	Push bool
	// PRDir receives one pull request description per service,
	// SERVICE.md; "" skips them.
	PRDir string
	// SkipTests runs go build but not go test (for a quick dry pass).
	SkipTests bool
	// Progress, when set, is called as each service finishes.
	Progress func(done, total int, r Result)
}

// Result is the report of one service.
type Result struct {
	Service string `json:"service"`
	Source  string `json:"source"`
	Outcome string `json:"outcome"`
	Branch  string `json:"branch,omitempty"`
	Commit  string `json:"commit,omitempty"`
	// TemplateFrom and To, KitFrom and To, are what changed.
	TemplateFrom int    `json:"templateFrom,omitempty"`
	TemplateTo   int    `json:"templateTo,omitempty"`
	KitFrom      string `json:"kitFrom,omitempty"`
	KitTo        string `json:"kitTo,omitempty"`
	// Conflicts are the files a person must resolve, with the lines of
	// their markers.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Failure is the first failure of tidy, build or test.
	Failure string `json:"failure,omitempty"`
	// Error says why the service was not upgraded (outcome error).
	Error   string  `json:"error,omitempty"`
	PRFile  string  `json:"prFile,omitempty"`
	Pushed  bool    `json:"pushed,omitempty"`
	Seconds float64 `json:"seconds"`
	// Steps splits Seconds by step (checkout, upgrade, tidy, build,
	// test, commit); a step that was not needed is absent.
	Steps    Steps `json:"steps,omitempty"`
	upgraded []scaffold.FileChange
}

// Conflict is a file left with conflict markers, or kept though the
// template dropped it.
type Conflict struct {
	Path  string `json:"path"`
	Lines []int  `json:"lines,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Summary counts outcomes.
type Summary map[string]int

// Report is the whole run.
type Report struct {
	Branch  string   `json:"branch"`
	Results []Result `json:"results"`
	Summary Summary  `json:"summary"`
	Seconds float64  `json:"seconds"`
	// Steps sums every service's Steps: where the fleet's time went.
	Steps    Steps     `json:"steps"`
	Started  time.Time `json:"started"`
	Template int       `json:"template,omitempty"`
	Kit      string    `json:"kit,omitempty"`
}

// BranchName is the default branch for a change.
func BranchName(template int, kit string) string {
	b := "pave/upgrade"
	if template >= 0 {
		if template == 0 {
			template = scaffold.CurrentVersion()
		}
		b += fmt.Sprintf("-template-v%d", template)
	}
	if kit != "" {
		b += "-kit-" + kit
	}
	return b
}

// Validate checks the options before any repository is touched.
func (o *Options) Validate() error {
	if o.Template > scaffold.CurrentVersion() {
		return fmt.Errorf("template version %d is unknown: this pave knows versions 1 to %d", o.Template, scaffold.CurrentVersion())
	}
	if o.Kit != "" && !semver.IsValid(o.Kit) {
		return fmt.Errorf("--kit %q is not a semantic version such as v0.2.0", o.Kit)
	}
	if o.Template < 0 && o.Kit == "" {
		return fmt.Errorf("nothing to do: no template upgrade and no --kit")
	}
	if o.Only != "" && !strings.HasPrefix(o.Only, "owner=") {
		if _, err := path.Match(o.Only, ""); err != nil {
			return fmt.Errorf("--only %q: %w (want a glob such as 'pay-*', or owner=TEAM)", o.Only, err)
		}
	}
	if o.Branch == "" {
		o.Branch = BranchName(o.Template, o.Kit)
	}
	if _, err := inventory.Git(context.Background(), os.TempDir(), "check-ref-format", "--branch", o.Branch); err != nil || strings.HasPrefix(o.Branch, "-") {
		return fmt.Errorf("--branch %q is not a valid Git branch name", o.Branch)
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	return nil
}

// Run upgrades every service of f and reports each, in the file's order.
func Run(ctx context.Context, f inventory.File, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.PRDir != "" {
		if err := os.MkdirAll(opts.PRDir, 0o755); err != nil {
			return nil, fmt.Errorf("--pr-dir: %w", err)
		}
	}
	start := time.Now()
	rep := &Report{Branch: opts.Branch, Results: make([]Result, len(f.Services)), Summary: Summary{}, Started: start, Template: opts.Template, Kit: opts.Kit}
	sem := make(chan struct{}, opts.Jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i, e := range f.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t0 := time.Now()
			r := upgradeOne(ctx, e, opts)
			r.Seconds = time.Since(t0).Seconds()
			rep.Results[i] = r
			mu.Lock()
			defer mu.Unlock()
			done++
			if opts.Progress != nil {
				opts.Progress(done, len(f.Services), r)
			}
		}()
	}
	wg.Wait()
	rep.Steps = Steps{}
	for _, r := range rep.Results {
		rep.Summary[r.Outcome]++
		for k, v := range r.Steps {
			rep.Steps[k] += v
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// selected applies --only to a service's name and owner.
func selected(only, name, owner string) bool {
	if only == "" {
		return true
	}
	if team, ok := strings.CutPrefix(only, "owner="); ok {
		return owner == team
	}
	ok, _ := path.Match(only, name)
	return ok
}

// readRecord reads a service's .pave.yaml.
func readRecord(dir string) (scaffold.Record, error) {
	data, err := os.ReadFile(filepath.Join(dir, scaffold.RecordFile))
	if err != nil {
		if os.IsNotExist(err) {
			return scaffold.Record{}, fmt.Errorf("not a Pave service: no %s at its root", scaffold.RecordFile)
		}
		return scaffold.Record{}, err
	}
	return scaffold.ParseRecord(data)
}
