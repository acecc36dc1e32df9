// Package scaffold generates a service's repository from Pave's versioned
// template (`pave new`) and brings a newer template version into an existing
// repository with a per-file three-way merge (`pave upgrade`).
//
// Template versions are layered: templates/v1 holds the whole tree, and each
// later templates/vN holds only the files added or changed at version N, with
// the files removed at N listed in versions below. Version N renders as v1
// overlaid by v2..vN, so every version ever released stays renderable (an
// upgrade needs the version a repository was made from as its merge base)
// while the embedded tree only grows by what changed.
package scaffold

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"unicode"
)

//go:embed all:templates
var templateFS embed.FS

// templateVersion describes what one template version changed; the list is
// the template's changelog and the layering order.
type templateVersion struct {
	Number  int
	Summary string
	// Removed are template paths (before expansion) dropped at this version.
	Removed []string
}

var versions = []templateVersion{
	{Number: 1, Summary: "service on kit, Dockerfile, CI caller, kustomize base and overlays, Istio and Gateway API routing, dashboard, SLO rules"},
	{
		Number:  2,
		Summary: "NetworkPolicy, zone spread, GOTOOLCHAIN=local builder, README sections on observing and upgrading",
		Removed: []string{"observability/README.md"},
	},
	{Number: 3, Summary: "shared Go build cache in CI (repository variable PAVE_CACHE_URL, secret PAVE_CACHE_TOKEN), README section on it"},
}

// CurrentVersion is the template version `pave new` writes and `pave upgrade`
// upgrades to.
func CurrentVersion() int { return versions[len(versions)-1].Number }

// VersionInfo is one entry of the template's changelog.
type VersionInfo struct {
	Number  int    `json:"number"`
	Summary string `json:"summary"`
}

// Versions returns the template changelog, oldest first.
func Versions() []VersionInfo {
	out := make([]VersionInfo, len(versions))
	for i, v := range versions {
		out[i] = VersionInfo{Number: v.Number, Summary: v.Summary}
	}
	return out
}

// clusterSegment in a template path expands to one copy per cluster.
const clusterSegment = "__cluster__"

// templateSuffix marks files stored under another name so the Go tool does
// not treat them as part of Pave (Go sources, go.mod) and git does not read
// the template's .gitignore as Pave's own; it is dropped on render.
const templateSuffix = ".tmpl"

// sources returns, for template version v, each template path with the
// embedded file that provides it.
func sources(v int) (map[string]string, error) {
	if v < 1 || v > CurrentVersion() {
		return nil, fmt.Errorf("template version %d is unknown: this pave knows versions 1 to %d", v, CurrentVersion())
	}
	files := map[string]string{}
	for _, tv := range versions[:v] {
		for _, r := range tv.Removed {
			delete(files, r)
		}
		root := fmt.Sprintf("templates/v%d", tv.Number)
		err := fs.WalkDir(templateFS, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			files[strings.TrimPrefix(p, root+"/")] = p
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// data is what templates see.
type data struct {
	Answers
	TemplateVersion int
	KitModule       string
	Title           string // the name in CamelCase, for alert names
	Cluster         string // set in files under __cluster__
	KitReplacePath  string // KitReplace as go.mod writes it (quoted if needed)
	ErrorBudget     string
	LatencyBudget   string
	LatencyBucket   string
	Windows         []window
	BurnAlerts      []burnAlert
}

type window struct{ Name, Range string }

// burnAlert is one row of the SRE workbook's multi-window, multi-burn-rate
// table for a 30-day SLO.
type burnAlert struct {
	Long, Short, For, Severity, Lasts string
	Factor                            string
}

func newData(a Answers, v int) (data, error) {
	bucket, err := a.latencyBucket()
	if err != nil {
		return data{}, err
	}
	d := data{
		Answers: a, TemplateVersion: v, KitModule: KitModule, Title: camel(a.Name), KitReplacePath: goModPath(a.KitReplace),
		ErrorBudget: budget(a.AvailabilityObjective), LatencyBudget: budget(a.LatencyObjective), LatencyBucket: bucket,
		BurnAlerts: []burnAlert{
			{Long: "1h", Short: "5m", Factor: "14.4", For: "2m", Severity: "page", Lasts: "2 days"},
			{Long: "6h", Short: "30m", Factor: "6", For: "15m", Severity: "page", Lasts: "5 days"},
			{Long: "1d", Short: "2h", Factor: "3", For: "1h", Severity: "ticket", Lasts: "10 days"},
			{Long: "3d", Short: "6h", Factor: "1", For: "3h", Severity: "ticket", Lasts: "30 days"},
		},
	}
	for _, w := range []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d"} {
		d.Windows = append(d.Windows, window{Name: w, Range: "[" + w + "]"})
	}
	return d, nil
}

// budget turns an objective in percent ("99.9") into the error budget as a
// fraction ("0.001"), exactly, by decimal arithmetic on the digits.
func budget(objective string) string {
	intPart, frac, _ := strings.Cut(objective, ".")
	scale := len(frac)
	digits := strings.TrimLeft(intPart+frac, "0")
	var n int64
	for _, c := range digits {
		n = n*10 + int64(c-'0')
	}
	var full int64 = 100
	for range scale {
		full *= 10
	}
	rest := full - n // budget = rest / full, in percent; as a fraction / 100
	s := fmt.Sprintf("%d", rest)
	places := scale + 2
	for len(s) <= places {
		s = "0" + s
	}
	s = s[:len(s)-places] + "." + s[len(s)-places:]
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// goModPath quotes a directory for go.mod when it holds spaces or quotes.
func goModPath(p string) string {
	if strings.ContainsAny(p, " \t\"'`") {
		return strconv.Quote(p)
	}
	return p
}

func camel(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String()
}

// Render returns the repository's files at template version v for the given
// answers, keyed by slash-separated path relative to the repository root.
// .pave.yaml is not among them: it is written by New and Upgrade.
func Render(a Answers, v int) (map[string][]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	srcs, err := sources(v)
	if err != nil {
		return nil, err
	}
	d, err := newData(a, v)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(srcs))
	names := make([]string, 0, len(srcs))
	for p := range srcs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		raw, err := templateFS.ReadFile(srcs[p])
		if err != nil {
			return nil, err
		}
		t, err := template.New(p).Delims("[[", "]]").Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("template v%d %s: %w", v, p, err)
		}
		dest := strings.TrimSuffix(p, templateSuffix)
		clusters := []string{""}
		if strings.Contains(dest, clusterSegment) {
			clusters = a.Clusters
		}
		for _, c := range clusters {
			d.Cluster = c
			var buf bytes.Buffer
			if err := t.Execute(&buf, d); err != nil {
				return nil, fmt.Errorf("template v%d %s: %w", v, p, err)
			}
			name := strings.ReplaceAll(dest, clusterSegment, c)
			if err := checkLocal(name); err != nil {
				return nil, err
			}
			out[name] = buf.Bytes()
		}
	}
	return out, nil
}

// checkLocal refuses a path that would land outside the repository.
func checkLocal(p string) error {
	if p == "" || path.IsAbs(p) || !filepath.IsLocal(filepath.FromSlash(p)) || path.Clean(p) != p {
		return &FieldError{Field: "path", Err: fmt.Errorf("%q escapes the target directory: template paths must stay inside it", p)}
	}
	return nil
}
