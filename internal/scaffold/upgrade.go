package scaffold

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pave-platform/pave/internal/scaffold/merge"
)

// UpgradeOptions configure Upgrade.
type UpgradeOptions struct {
	Dir string
	// Version to upgrade to; 0 means the current one.
	Version int
	// DryRun computes the result and its diff but writes nothing.
	DryRun bool
	// Force allows a dirty git tree, or a directory outside git.
	Force bool
}

// File actions of an upgrade.
const (
	ActionUpdated     = "updated"      // the template's change applied to an untouched file
	ActionMerged      = "merged"       // the template's and the team's changes merged cleanly
	ActionConflict    = "conflict"     // written with conflict markers
	ActionAdded       = "added"        // a new template file
	ActionRemoved     = "removed"      // dropped by the template, untouched by the team
	ActionKeptDeleted = "kept-deleted" // changed by the template, deleted by the team: stays deleted
	ActionKeptOurs    = "kept-ours"    // dropped by the template but changed by the team: kept, listed as a conflict
)

// FileChange is what the upgrade does to one file.
type FileChange struct {
	Path   string `json:"path"`
	Action string `json:"action"`
	// ConflictLines are the lines of the conflict markers in the written file.
	ConflictLines []int  `json:"conflictLines,omitempty"`
	Note          string `json:"note,omitempty"`
	content       []byte
	remove        bool
	before        []byte
}

// UpgradeResult summarises an upgrade.
type UpgradeResult struct {
	Dir      string       `json:"dir"`
	From     int          `json:"from"`
	To       int          `json:"to"`
	UpToDate bool         `json:"upToDate"`
	DryRun   bool         `json:"dryRun"`
	Changes  []FileChange `json:"changes"`
	// Conflicts lists the paths that need a person: conflict markers to
	// resolve, or a file the template dropped that the team changed.
	Conflicts []string `json:"conflicts"`
	// Diff is the unified diff of every change (always computed; the CLI
	// prints it for --dry-run).
	Diff string `json:"diff,omitempty"`
}

// Check reads the recorded template version of the service in dir.
func Check(dir string) (recorded, current int, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, 0, err
	}
	defer root.Close()
	rec, err := readRecord(root)
	if err != nil {
		return 0, 0, err
	}
	return rec.TemplateVersion, CurrentVersion(), nil
}

// ErrDirty is returned when the git tree has uncommitted changes.
var ErrDirty = errors.New("uncommitted changes")

// Upgrade merges template version To into the service in dir. It renders the
// recorded version (base) and the new one (theirs) with the recorded answers
// and merges each file three ways with the repository's (ours). Files the
// template did not change between the versions are never touched. All merges
// are computed before anything is written; then each file is replaced
// atomically and .pave.yaml last, so an interrupted upgrade is re-run from
// the old recorded version.
func Upgrade(ctx context.Context, opts UpgradeOptions) (*UpgradeResult, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rec, err := readRecord(root)
	if err != nil {
		return nil, err
	}
	to := opts.Version
	if to == 0 {
		to = CurrentVersion()
	}
	res := &UpgradeResult{Dir: dir, From: rec.TemplateVersion, To: to, DryRun: opts.DryRun, Changes: []FileChange{}, Conflicts: []string{}}
	if to < rec.TemplateVersion {
		return nil, fmt.Errorf("%s is at template version %d, newer than the requested %d: pave upgrade does not downgrade", dir, rec.TemplateVersion, to)
	}
	if to > CurrentVersion() {
		return nil, fmt.Errorf("template version %d is unknown: this pave knows versions 1 to %d", to, CurrentVersion())
	}
	if to == rec.TemplateVersion {
		res.UpToDate = true
		return res, nil
	}
	if !opts.Force && !opts.DryRun {
		if err := checkClean(ctx, dir); err != nil {
			return nil, err
		}
	}
	base, err := Render(rec.Answers, rec.TemplateVersion)
	if err != nil {
		return nil, fmt.Errorf("render template version %d (base): %w", rec.TemplateVersion, err)
	}
	theirs, err := Render(rec.Answers, to)
	if err != nil {
		return nil, fmt.Errorf("render template version %d: %w", to, err)
	}

	paths := map[string]bool{}
	for p := range base {
		paths[p] = true
	}
	for p := range theirs {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)

	for _, p := range sorted {
		b, inBase := base[p]
		t, inTheirs := theirs[p]
		if inBase && inTheirs && bytes.Equal(b, t) {
			continue // unchanged by the template: whatever the team did stands
		}
		ours, exists, err := readExisting(root, p)
		if err != nil {
			return nil, err
		}
		c := FileChange{Path: p, before: ours}
		switch {
		case !inBase: // new in the template
			switch {
			case !exists:
				c.Action, c.content = ActionAdded, t
			case bytes.Equal(ours, t):
				continue
			default:
				mergeInto(&c, "", string(ours), string(t))
				c.Note = "the team already had a file here"
			}
		case !inTheirs: // dropped by the template
			switch {
			case !exists:
				continue
			case bytes.Equal(ours, b):
				c.Action, c.remove = ActionRemoved, true
			default:
				c.Action, c.Note = ActionKeptOurs, "the template dropped this file but the team changed it: delete it or keep it"
			}
		default: // changed by the template
			switch {
			case !exists:
				c.Action, c.Note = ActionKeptDeleted, "the template changed this file; the team had deleted it, so it stays deleted"
			case bytes.Equal(ours, t):
				continue
			case bytes.Equal(ours, b):
				c.Action, c.content = ActionUpdated, t
			default:
				mergeInto(&c, string(b), string(ours), string(t))
			}
		}
		res.Changes = append(res.Changes, c)
		if c.Action == ActionConflict || c.Action == ActionKeptOurs {
			res.Conflicts = append(res.Conflicts, p)
		}
	}

	newRec := rec
	newRec.TemplateVersion = to
	recData, err := newRec.Marshal()
	if err != nil {
		return nil, err
	}
	oldRec, _, err := readExisting(root, RecordFile)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, FileChange{Path: RecordFile, Action: ActionUpdated, content: recData, before: oldRec})
	res.Diff = diffOf(res.Changes)
	if opts.DryRun {
		return res, nil
	}
	for _, c := range res.Changes {
		switch {
		case c.remove:
			if err := root.Remove(c.Path); err != nil {
				return res, fmt.Errorf("remove %s: %w", c.Path, err)
			}
		case c.content != nil:
			if err := writeAtomic(root, c.Path, c.content, modeOf(root, c.Path, 0o644)); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func mergeInto(c *FileChange, base, ours, theirs string) {
	m := merge.Merge3(base, ours, theirs)
	c.content = []byte(m.Text)
	if m.Conflicts > 0 {
		c.Action, c.ConflictLines = ActionConflict, m.ConflictLines
		return
	}
	c.Action = ActionMerged
}

func diffOf(changes []FileChange) string {
	var b strings.Builder
	for _, c := range changes {
		oldLabel, newLabel := "a/"+c.Path, "b/"+c.Path
		if c.before == nil {
			oldLabel = "/dev/null"
		}
		after := string(c.content)
		switch {
		case c.remove:
			newLabel, after = "/dev/null", ""
		case c.content == nil:
			continue
		}
		b.WriteString(merge.Unified(oldLabel, newLabel, string(c.before), after))
	}
	return b.String()
}

// checkClean refuses a directory that is not in git or has uncommitted
// changes: the upgrade must be reviewable and undoable with git.
func checkClean(ctx context.Context, dir string) error {
	git, err := exec.LookPath("git")
	if err != nil {
		return fmt.Errorf("git is not installed, so pave cannot check %s for uncommitted changes: install git, or pass --force", dir)
	}
	cmd := exec.CommandContext(ctx, git, "status", "--porcelain")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s is not a git work tree (%s): commit the service to git first so the upgrade can be reviewed and undone, or pass --force", dir, strings.TrimSpace(stderr.String()))
	}
	if len(bytes.TrimSpace(out)) > 0 {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) > 5 {
			lines = append(lines[:5], "...")
		}
		return fmt.Errorf("%w in %s:\n  %s\ncommit or stash them first, or pass --force", ErrDirty, dir, strings.Join(lines, "\n  "))
	}
	return nil
}
