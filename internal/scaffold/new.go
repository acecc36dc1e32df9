package scaffold

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// NewOptions configure New.
type NewOptions struct {
	Answers Answers
	// Dir is the repository to create; default ./<name>.
	Dir string
	// Force allows writing into a directory that is not empty.
	Force bool
	// Version is the template version to render; 0 means the current one.
	Version int
	// GoCommand runs `go mod tidy` offline to write go.sum; "" skips it.
	GoCommand string
}

// NewResult summarises what New wrote.
type NewResult struct {
	Dir             string   `json:"dir"`
	Name            string   `json:"name"`
	TemplateVersion int      `json:"templateVersion"`
	Files           []string `json:"files"`
	KitReplace      string   `json:"kitReplace,omitempty"`
	// GoSum says whether go.sum was generated, and if not, what to do.
	GoSum      string  `json:"goSum"`
	DurationMS float64 `json:"durationMs"`
}

// New writes a service's repository. Every answer and path is checked and
// every file rendered before anything is written; a new directory appears
// whole (it is filled beside the target and renamed into place).
func New(ctx context.Context, opts NewOptions) (*NewResult, error) {
	start := time.Now()
	a := opts.Answers.WithDefaults()
	if err := a.Validate(); err != nil {
		return nil, err
	}
	v := opts.Version
	if v == 0 {
		v = CurrentVersion()
	}
	files, err := Render(a, v)
	if err != nil {
		return nil, err
	}
	rec, err := Record{Template: TemplateName, TemplateVersion: v, Answers: a}.Marshal()
	if err != nil {
		return nil, err
	}
	files[RecordFile] = rec

	dir := opts.Dir
	if dir == "" {
		dir = a.Name
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, &FieldError{Field: "dir", Err: err}
	}
	exists, err := checkTarget(dir, opts.Force)
	if err != nil {
		return nil, err
	}

	res := &NewResult{Dir: dir, Name: a.Name, TemplateVersion: v, KitReplace: a.KitReplace}
	for p := range files {
		res.Files = append(res.Files, p)
	}
	sort.Strings(res.Files)

	writeDir := dir
	if !exists {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, &FieldError{Field: "dir", Err: err}
		}
		writeDir, err = os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".pave-new-")
		if err != nil {
			return nil, &FieldError{Field: "dir", Err: err}
		}
		defer os.RemoveAll(writeDir) // a no-op once renamed into place
	}
	if err := writeAll(writeDir, res.Files, files); err != nil {
		return nil, err
	}
	res.GoSum = "skipped: run `go mod tidy` in " + dir
	if opts.GoCommand != "" {
		if how, err := goSum(ctx, opts.GoCommand, writeDir); err != nil {
			res.GoSum = fmt.Sprintf("not generated (%v): run `go mod tidy` in %s with network access", err, dir)
		} else {
			res.GoSum = how
		}
	}
	if !exists {
		if err := os.Chmod(writeDir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(writeDir, dir); err != nil {
			return nil, fmt.Errorf("move the new repository into place: %w", err)
		}
	}
	res.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	return res, nil
}

// checkTarget reports whether dir exists, refusing one that is not a
// directory, or is not empty unless force.
func checkTarget(dir string, force bool) (bool, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, &FieldError{Field: "dir", Err: err}
	}
	if !fi.IsDir() {
		return false, &FieldError{Field: "dir", Err: fmt.Errorf("%s exists and is not a directory: pick another --dir", dir)}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, &FieldError{Field: "dir", Err: err}
	}
	if len(entries) > 0 && !force {
		return false, &FieldError{Field: "dir", Err: fmt.Errorf("%s is not empty (%d entries): pick another --dir, or pass --force to write the template's files into it", dir, len(entries))}
	}
	return true, nil
}

// writeAll writes the files into dir. If one fails, the files this call
// created are removed again, so a failed run leaves no half repository.
func writeAll(dir string, names []string, files map[string][]byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	// created lists, in creation order, the files and directories to remove
	// again if a write fails.
	var created []string
	for _, p := range names {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, err := root.Lstat(d); errors.Is(err, fs.ErrNotExist) && !slices.Contains(created, d) {
				created = append(created, d)
			}
		}
		_, existed, err := readExisting(root, p)
		if err == nil {
			err = writeAtomic(root, p, files[p], modeOf(root, p, 0o644))
		}
		if err != nil {
			slices.SortFunc(created, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
			for _, c := range created {
				_ = root.Remove(c)
			}
			return err
		}
		if !existed {
			created = append(created, p)
		}
	}
	return nil
}

// GoCommand returns the go command to run `go mod tidy` with, or "".
func GoCommand() string {
	p, err := exec.LookPath("go")
	if err != nil {
		return ""
	}
	return p
}

// DescribeFiles groups file paths by top directory for a short summary.
func DescribeFiles(files []string) string {
	groups := map[string]int{}
	var order []string
	for _, f := range files {
		top, _, found := strings.Cut(f, "/")
		if !found {
			top = "."
		}
		if groups[top] == 0 {
			order = append(order, top)
		}
		groups[top]++
	}
	var parts []string
	for _, g := range order {
		parts = append(parts, fmt.Sprintf("%s (%d)", g, groups[g]))
	}
	return strings.Join(parts, ", ")
}
