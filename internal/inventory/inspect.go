package inventory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/pave-platform/pave/internal/scaffold"
)

// Service is one row of the inventory.
type Service struct {
	Name   string `json:"name"`
	Source string `json:"source"` // the path or Git URL (with @ref) of fleet.yaml
	Commit string `json:"commit,omitempty"`
	// TemplateVersion is .pave.yaml's; TemplateBehind is how many
	// template versions it lags the newest (TemplateLatest).
	TemplateVersion int `json:"templateVersion,omitempty"`
	TemplateLatest  int `json:"templateLatest"`
	TemplateBehind  int `json:"templateBehind"`
	// KitVersion is the required version of kit; KitReplace the local
	// directory it is replaced with, when it is.
	KitVersion string `json:"kitVersion,omitempty"`
	KitReplace string `json:"kitReplace,omitempty"`
	KitLatest  string `json:"kitLatest,omitempty"`
	KitBehind  bool   `json:"kitBehind"`
	GoVersion  string `json:"goVersion,omitempty"`
	Owner      string `json:"owner,omitempty"`
	// Vulns are the known vulnerabilities of the module graph; VulnError
	// says why they could not be checked ("" when they were).
	Vulns     []Vuln `json:"vulns"`
	VulnError string `json:"vulnError,omitempty"`
	// Dirty is set for a path entry with uncommitted changes: the report
	// reads the tree as it is, and says so.
	Dirty       bool         `json:"dirty,omitempty"`
	LastRelease *LastRelease `json:"lastRelease,omitempty"`
	// ReleaseUnknown says why the last release is not known (control
	// plane unreachable); empty when it was asked.
	ReleaseUnknown string `json:"releaseUnknown,omitempty"`
	// Error is why this service could not be read (not a Pave service,
	// unreachable remote): the row stands, the others proceed.
	Error string `json:"error,omitempty"`
}

// LastRelease is the newest release of a service.
type LastRelease struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	Phase    string    `json:"phase"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	created  time.Time
}

// Releases gives the newest release per service name.
type Releases interface {
	LastReleases(ctx context.Context) (map[string]LastRelease, error)
}

// Options configure Inventory.
type Options struct {
	Sources *Sources
	// VulnDB is the vulnerability database (a directory, or a URL such as
	// https://vuln.go.dev or file:///…); "" skips the scan.
	VulnDB string
	// Releases, when set, fills LastRelease; nil or failing leaves it
	// unknown.
	Releases Releases
	// KitLatest is the newest kit version, to tell who is behind.
	KitLatest string
	// Jobs bounds concurrent inspections (default 4).
	Jobs int
	// Progress, when set, is called as each service is done.
	Progress func(done, total int, s Service)
}

// Inventory reads every entry and returns one row per service, in the
// order Sort gives. One service's failure is reported in its row.
func Inventory(ctx context.Context, f File, opts Options) []Service {
	var rels map[string]LastRelease
	relErr := "no control plane asked"
	if opts.Releases != nil {
		var err error
		if rels, err = opts.Releases.LastReleases(ctx); err != nil {
			relErr = "unknown: " + err.Error()
		} else {
			relErr = ""
		}
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	out := make([]Service, len(f.Services))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for i, e := range f.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := inspectEntry(ctx, e, opts)
			if relErr != "" {
				s.ReleaseUnknown = relErr
			} else if r, ok := rels[s.Name]; ok {
				s.LastRelease = &r
			}
			out[i] = s
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, len(f.Services), s)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	Sort(out)
	return out
}

func inspectEntry(ctx context.Context, e Entry, opts Options) Service {
	s := Service{Name: e.Label(), Source: e.Path, TemplateLatest: scaffold.CurrentVersion(), KitLatest: opts.KitLatest, Vulns: []Vuln{}}
	if e.Git != "" {
		s.Source = e.Git
		if e.Ref != "" {
			s.Source += "@" + e.Ref
		}
	}
	c, err := opts.Sources.Checkout(ctx, e)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Commit = c.Commit
	if !c.Cloned {
		if out, err := Git(ctx, c.Dir, "status", "--porcelain"); err == nil && out != "" {
			s.Dirty = true
		}
	}
	if err := Inspect(ctx, c.Dir, &s, opts.VulnDB); err != nil {
		s.Error = err.Error()
	}
	if e.Name != "" {
		s.Name = e.Name
	}
	return s
}

// Inspect fills s from the service repository in dir: .pave.yaml, go.mod,
// CODEOWNERS and, with a database, the vulnerability scan. It fails when
// dir is not a Pave service.
func Inspect(ctx context.Context, dir string, s *Service, vulnDB string) error {
	data, err := os.ReadFile(filepath.Join(dir, scaffold.RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("not a Pave service: no %s at its root (make services with pave new)", scaffold.RecordFile)
	}
	if err != nil {
		return err
	}
	rec, err := scaffold.ParseRecord(data)
	if err != nil {
		return fmt.Errorf("not a readable Pave service: %w", err)
	}
	s.Name = rec.Answers.Name
	s.Owner = rec.Answers.Owner
	s.TemplateVersion = rec.TemplateVersion
	s.TemplateLatest = scaffold.CurrentVersion()
	s.TemplateBehind = s.TemplateLatest - s.TemplateVersion
	if o := codeOwner(dir); o != "" {
		s.Owner = o
	}
	gm, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("go.mod: %w", err)
	}
	mf, err := modfile.ParseLax("go.mod", gm, nil)
	if err != nil {
		return err
	}
	if mf.Go != nil {
		s.GoVersion = mf.Go.Version
	}
	for _, r := range mf.Require {
		if r.Mod.Path == scaffold.KitModule {
			s.KitVersion = r.Mod.Version
		}
	}
	for _, r := range mf.Replace {
		if r.Old.Path == scaffold.KitModule {
			s.KitReplace = r.New.Path
		}
	}
	if s.KitLatest != "" && s.KitVersion != "" && semver.Compare(s.KitVersion, s.KitLatest) < 0 {
		s.KitBehind = true
	}
	if vulnDB != "" {
		vulns, err := Scan(ctx, dir, vulnDB)
		if err != nil {
			s.VulnError = err.Error()
		} else {
			s.Vulns = vulns
		}
	} else {
		s.VulnError = "not scanned: no vulnerability database given (--vulndb)"
	}
	return nil
}

// codeOwner returns the owners of the catch-all rule of CODEOWNERS (at the
// root, .github/ or docs/, as GitHub reads it), or "".
func codeOwner(dir string) string {
	for _, p := range []string{".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"} {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			continue
		}
		owner := ""
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && (f[0] == "*" || f[0] == "/") {
				owner = strings.Join(f[1:], " ") // the last match wins, as on GitHub
			}
		}
		return owner
	}
	return ""
}

// Sort orders rows as a person triages them: unreadable first, then the
// most vulnerable, then the oldest template, then the oldest kit, then name.
func Sort(rows []Service) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if (a.Error != "") != (b.Error != "") {
			return a.Error != ""
		}
		if len(a.Vulns) != len(b.Vulns) {
			return len(a.Vulns) > len(b.Vulns)
		}
		if a.TemplateBehind != b.TemplateBehind {
			return a.TemplateBehind > b.TemplateBehind
		}
		if c := semver.Compare(a.KitVersion, b.KitVersion); c != 0 {
			return c < 0
		}
		return a.Name < b.Name
	})
}
