package bulkupgrade

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/scaffold"
)

// upgradeOne works on one service in a Git worktree of its repository on
// the branch, so the team's own checkout (a path entry) is never touched:
// the branch simply appears in it.
func upgradeOne(ctx context.Context, e inventory.Entry, opts Options) Result {
	r := Result{Service: e.Label(), Source: e.Path, Branch: opts.Branch, Steps: Steps{}}
	t0 := time.Now()
	if e.Git != "" {
		r.Source = e.Git
	}
	fail := func(format string, args ...any) Result {
		r.Outcome, r.Error = Failed, fmt.Sprintf(format, args...)
		return r
	}
	c, err := opts.Sources.Checkout(ctx, e)
	if err != nil {
		return fail("%v", err)
	}
	rec, err := readRecord(c.Dir)
	if err != nil {
		return fail("%v", err)
	}
	if _, err := inventory.Git(ctx, c.Dir, "rev-parse", "--git-dir"); err != nil {
		return fail("%s is not in Git: the upgrade is made on a branch, so commit the service to Git first", c.Dir)
	}
	if e.Name == "" {
		r.Service = rec.Answers.Name
	}
	if !selected(opts.Only, r.Service, rec.Answers.Owner) {
		r.Outcome = Skipped
		return r
	}
	if !c.Cloned {
		if out, err := inventory.Git(ctx, c.Dir, "status", "--porcelain"); err != nil {
			return fail("%v", err)
		} else if out != "" {
			return fail("uncommitted changes in %s: commit or stash them first (the upgrade branches from the last commit)", c.Dir)
		}
	}

	branchRef := "refs/heads/" + opts.Branch
	_, err = inventory.Git(ctx, c.Dir, "rev-parse", "--verify", "--quiet", branchRef)
	exists := err == nil
	if !exists {
		// A branch pushed by an earlier run (a clone made afresh) counts.
		if _, err := inventory.Git(ctx, c.Dir, "rev-parse", "--verify", "--quiet", "refs/remotes/origin/"+opts.Branch); err == nil {
			if _, err := inventory.Git(ctx, c.Dir, "branch", opts.Branch, "origin/"+opts.Branch); err != nil {
				return fail("%v", err)
			}
			exists = true
		}
	}
	if err := os.MkdirAll(filepath.Join(opts.Sources.CacheDir, "worktrees"), 0o755); err != nil {
		return fail("%v", err)
	}
	wt, err := os.MkdirTemp(filepath.Join(opts.Sources.CacheDir, "worktrees"), r.Service+"-")
	if err != nil {
		return fail("%v", err)
	}
	os.Remove(wt)                                         // git worktree add makes it
	_, _ = inventory.Git(ctx, c.Dir, "worktree", "prune") // of a run killed midway
	args := []string{"worktree", "add", "--quiet", wt, opts.Branch}
	if !exists {
		args = []string{"worktree", "add", "--quiet", "-b", opts.Branch, wt, "HEAD"}
	}
	if _, err := inventory.Git(ctx, c.Dir, args...); err != nil {
		return fail("%v", err)
	}
	defer func() {
		// context.Background: the worktree is removed even when ctx ended.
		_, _ = inventory.Git(context.Background(), c.Dir, "worktree", "remove", "--force", wt)
	}()

	r.Steps.since(StepCheckout, t0)
	t0 = time.Now()
	cur, err := readRecord(wt)
	if err != nil {
		return fail("on branch %s: %v", opts.Branch, err)
	}
	kitNow, err := kitVersion(wt)
	if err != nil {
		return fail("%v", err)
	}
	target := opts.Template
	if target == 0 {
		target = scaffold.CurrentVersion()
	}
	needTemplate := target > 0 && cur.TemplateVersion < target
	needKit := opts.Kit != "" && kitNow != "" && semver.Compare(kitNow, opts.Kit) < 0
	if !needTemplate && !needKit {
		if exists {
			r.Outcome = Unchanged
			r.Commit, _ = inventory.Git(ctx, wt, "rev-parse", "HEAD")
			return r
		}
		r.Outcome, r.Branch = UpToDate, ""
		_, _ = inventory.Git(context.Background(), c.Dir, "worktree", "remove", "--force", wt)
		_, _ = inventory.Git(context.Background(), c.Dir, "branch", "-D", opts.Branch)
		return r
	}

	if needTemplate {
		res, err := scaffold.Upgrade(ctx, scaffold.UpgradeOptions{Dir: wt, Version: target})
		if err != nil {
			return fail("template upgrade: %v", err)
		}
		r.TemplateFrom, r.TemplateTo = res.From, res.To
		r.upgraded = res.Changes
		for _, ch := range res.Changes {
			switch ch.Action {
			case scaffold.ActionConflict:
				r.Conflicts = append(r.Conflicts, Conflict{Path: ch.Path, Lines: ch.ConflictLines})
			case scaffold.ActionKeptOurs:
				r.Conflicts = append(r.Conflicts, Conflict{Path: ch.Path, Note: ch.Note})
			}
		}
	}
	if needKit {
		if err := setKit(wt, opts.Kit); err != nil {
			return fail("kit bump: %v", err)
		}
		r.KitFrom, r.KitTo = kitNow, opts.Kit
	}

	r.Steps.since(StepUpgrade, t0)
	r.Outcome = Clean
	if len(r.Conflicts) > 0 {
		// Markers break the build: the checks wait for a person.
		r.Outcome = Conflicts
	} else {
		tidy, err := goInputsChanged(ctx, wt)
		if err != nil {
			return fail("%v", err)
		}
		if failure := check(ctx, wt, tidy || needKit, opts.SkipTests, r.Steps); failure != "" {
			r.Outcome, r.Failure = TestsFailed, failure
		}
	}
	t0 = time.Now()
	if _, err := inventory.Git(ctx, wt, "add", "-A"); err != nil {
		return fail("%v", err)
	}
	if _, err := gitCommit(ctx, wt, commitMessage(r)); err != nil {
		return fail("commit: %v", err)
	}
	r.Commit, _ = inventory.Git(ctx, wt, "rev-parse", "HEAD")
	if opts.PRDir != "" {
		r.PRFile = filepath.Join(opts.PRDir, r.Service+".md")
		if err := writeFileAtomic(r.PRFile, []byte(prDescription(r))); err != nil {
			return fail("pull request description: %v", err)
		}
	}
	r.Steps.since(StepCommit, t0)
	if opts.Push {
		if _, err := inventory.Git(ctx, c.Dir, "push", "--quiet", "origin", branchRef+":"+branchRef); err != nil {
			r.Error = "push: " + err.Error()
		} else {
			r.Pushed = true
		}
	}
	return r
}

// gitCommit commits as the user's Git identity, or as Pave when there is
// none (a CI machine).
func gitCommit(ctx context.Context, dir, msg string) (string, error) {
	if _, err := inventory.Git(ctx, dir, "config", "user.email"); err != nil {
		return inventory.Git(ctx, dir, "-c", "user.name=pave", "-c", "user.email=pave@localhost", "commit", "--quiet", "--no-verify", "-m", msg)
	}
	return inventory.Git(ctx, dir, "commit", "--quiet", "--no-verify", "-m", msg)
}

func commitMessage(r Result) string {
	var parts []string
	if r.TemplateTo > 0 {
		parts = append(parts, fmt.Sprintf("template v%d -> v%d", r.TemplateFrom, r.TemplateTo))
	}
	if r.KitTo != "" {
		parts = append(parts, fmt.Sprintf("kit %s -> %s", r.KitFrom, r.KitTo))
	}
	msg := "pave upgrade: " + strings.Join(parts, ", ") + "\n\nMade by pave upgrade --all (" + r.Outcome + ")."
	if len(r.Conflicts) > 0 {
		msg += "\n\nConflicts to resolve:"
		for _, c := range r.Conflicts {
			msg += "\n  " + c.Path
		}
	}
	return msg
}

func kitVersion(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return "", err
	}
	for _, r := range f.Require {
		if r.Mod.Path == scaffold.KitModule {
			return r.Mod.Version, nil
		}
	}
	return "", nil
}

// setKit requires kit at version, keeping go.mod's comments and layout.
func setKit(dir, version string) error {
	p := filepath.Join(dir, "go.mod")
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return err
	}
	if err := f.AddRequire(scaffold.KitModule, version); err != nil {
		return err
	}
	out, err := f.Format()
	if err != nil {
		return err
	}
	return writeFileAtomic(p, out)
}

// Steps are the seconds a service spent in each step of its upgrade.
type Steps map[string]float64

func (s Steps) since(step string, t0 time.Time) { s[step] += time.Since(t0).Seconds() }

// String lists the steps that ran, in order, e.g. "checkout 3s, test 40s".
func (s Steps) String() string {
	var parts []string
	for _, k := range StepOrder {
		if v, ok := s[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0fs", k, v))
		}
	}
	return strings.Join(parts, ", ")
}

// StepOrder is the order the steps run in.
var StepOrder = []string{StepCheckout, StepUpgrade, StepTidy, StepBuild, StepTest, StepCommit}

// Names of the steps, in the order they run.
const (
	StepCheckout = "checkout" // clone or fetch, worktree on the branch
	StepUpgrade  = "upgrade"  // three-way template merge, kit bump
	StepTidy     = "tidy"
	StepBuild    = "build"
	StepTest     = "test"
	StepCommit   = "commit" // commit and pull request description
)

// check runs go mod tidy, go build and go test, and returns the first
// failure ("" when all pass). It spends no work the answer does not
// need, for these steps are nearly all of a fleet upgrade's time:
//   - tidy runs only when the change touched a Go input (go.mod, go.sum,
//     a .go file; a kit bump does), or when the build says the module
//     needs it;
//   - go test ./... compiles and links every package that has tests, so
//     go build runs only on the packages it reported "[no test files]"
//     (the build's second compile and link of each tested package would
//     prove nothing more);
//   - the go command's own caches, shared by every service, skip what
//     did not change (no -count=1: a test result cached for the very same
//     test binary and inputs is that result).
func check(ctx context.Context, dir string, tidy, skipTests bool, steps Steps) string {
	run := func(step string, args ...string) (string, error) {
		t0 := time.Now()
		defer func() { steps[step] += time.Since(t0).Seconds() }()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		// The service's own go.mod decides, not a workspace around it.
		cmd.Env = append(os.Environ(), "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	tidied := false
	doTidy := func() string {
		tidied = true
		if out, err := run(StepTidy, "mod", "tidy"); err != nil {
			return "go mod tidy: " + firstFailure(out, err)
		}
		return ""
	}
	if tidy {
		if f := doTidy(); f != "" {
			return f
		}
	}
	for {
		var out string
		var err error
		cmdline := "go build ./..."
		if skipTests {
			out, err = run(StepBuild, "build", "-o", os.DevNull, "./...")
		} else {
			cmdline = "go test ./..."
			out, err = run(StepTest, "test", "./...")
			if err == nil {
				if untested := untestedPackages(out); len(untested) > 0 {
					cmdline = "go build " + strings.Join(untested, " ")
					// -o os.DevNull: check, write no binary into the tree.
					out, err = run(StepBuild, append([]string{"build", "-o", os.DevNull}, untested...)...)
				}
			} else if buildFailed(out) {
				cmdline = "go build"
			}
		}
		if err == nil {
			return ""
		}
		if !tidied && needsTidy(out) {
			if f := doTidy(); f != "" {
				return f
			}
			continue
		}
		return cmdline + ": " + firstFailure(out, err)
	}
}

// untestedPackages are the packages go test's output says have no test
// files: go test did not build them.
func untestedPackages(out string) []string {
	var pkgs []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == "?" && strings.Join(f[2:], " ") == "[no test files]" {
			pkgs = append(pkgs, f[1])
		}
	}
	return pkgs
}

// buildFailed reports whether go test failed compiling, not testing.
func buildFailed(out string) bool {
	return strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]")
}

// needsTidy reports whether the go command refused the module as it is
// (a service committed untidy): go mod tidy fixes that.
func needsTidy(out string) bool {
	for _, s := range []string{"go mod tidy", "missing go.sum entry", "updates to go.mod needed", "no required module provides package", "but not required; to add it"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// goInputsChanged reports whether the worktree's change since HEAD
// touches what go mod tidy reads.
func goInputsChanged(ctx context.Context, dir string) (bool, error) {
	out, err := inventory.Git(ctx, dir, "status", "--porcelain", "--untracked-files=all")
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(out, "\n") {
		if len(l) < 4 {
			continue
		}
		p := l[3:]
		if i := strings.Index(p, " -> "); i >= 0 {
			p = p[i+4:]
		}
		p = strings.Trim(p, `"`)
		if base := filepath.Base(p); base == "go.mod" || base == "go.sum" || base == "go.work" || strings.HasSuffix(base, ".go") {
			return true, nil
		}
	}
	return false, nil
}

// firstFailure picks, from go test or go build output, the first failed
// test with its first message, else the first compiler error.
func firstFailure(out string, err error) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "--- FAIL:") {
			msg := strings.TrimSpace(l)
			if i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" && !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "---") {
				msg += " " + strings.TrimSpace(lines[i+1])
			}
			return msg
		}
	}
	// Else the first error, with up to two lines that continue it (the
	// go command's "imports" chains).
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "FAIL") || strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "go: downloading") {
			continue
		}
		msg = append(msg, t)
		if len(msg) == 3 {
			break
		}
	}
	if len(msg) > 0 {
		return strings.Join(msg, " ")
	}
	return err.Error()
}

func writeFileAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(p); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// prDescription is the pull request's body: what changed and why, what
// needs a person, what the checks said.
func prDescription(r Result) string {
	var b strings.Builder
	title := commitMessage(r)
	title = title[:strings.IndexByte(title, '\n')]
	fmt.Fprintf(&b, "# %s: %s\n\n", r.Service, title)
	fmt.Fprintf(&b, "Branch `%s`, made by `pave upgrade --all`. Outcome: **%s**.\n\n", r.Branch, r.Outcome)
	if r.TemplateTo > 0 {
		b.WriteString("## Template\n\n")
		for _, v := range scaffold.Versions() {
			if v.Number > r.TemplateFrom && v.Number <= r.TemplateTo {
				fmt.Fprintf(&b, "- v%d: %s\n", v.Number, v.Summary)
			}
		}
		b.WriteString("\nFiles:\n\n")
		for _, c := range r.upgraded {
			fmt.Fprintf(&b, "- `%s` %s\n", c.Path, c.Action)
		}
		b.WriteString("\n")
	}
	if r.KitTo != "" {
		fmt.Fprintf(&b, "## Kit\n\n`%s` %s -> %s\n\n", scaffold.KitModule, r.KitFrom, r.KitTo)
	}
	switch r.Outcome {
	case Conflicts:
		b.WriteString("## Needs you: conflicts\n\nThe team's changes and the template's touch the same lines. Resolve the markers (`<<<<<<< ours` / `||||||| base` / `=======` / `>>>>>>> theirs`), then run `go build ./... && go test ./...`:\n\n")
		for _, c := range r.Conflicts {
			if c.Note != "" {
				fmt.Fprintf(&b, "- `%s`: %s\n", c.Path, c.Note)
			} else {
				fmt.Fprintf(&b, "- `%s`: markers at lines %v\n", c.Path, c.Lines)
			}
		}
	case TestsFailed:
		fmt.Fprintf(&b, "## Needs you: checks failed\n\nFirst failure:\n\n```\n%s\n```\n", r.Failure)
	case Clean:
		b.WriteString("## Checks\n\n`go mod tidy`, `go build ./...` and `go test ./...` pass.\n")
	}
	return b.String()
}
