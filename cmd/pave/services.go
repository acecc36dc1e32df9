package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/scaffold"
)

func init() { register(servicesCommand) }

// fleetFlags are the flags shared by pave services and pave upgrade --all.
type fleetFlags struct {
	file, cacheDir string
	jobs           int
}

func (f *fleetFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "fleet", "fleet.yaml", "the fleet file: services: [{path: DIR}, {git: URL, ref: BRANCH}], paths relative to it")
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", defaultFleetCache(), "where Git entries are cloned")
	cmd.Flags().IntVar(&f.jobs, "jobs", 4, "services handled at once")
}

// load parses the fleet file and returns it with the sources it names.
func (f *fleetFlags) load() (inventory.File, *inventory.Sources, error) {
	data, err := os.ReadFile(f.file)
	if err != nil {
		return inventory.File{}, nil, fmt.Errorf("read the fleet file: %w (give another with --fleet)", err)
	}
	file, err := inventory.Parse(data)
	if err != nil {
		return inventory.File{}, nil, fmt.Errorf("%s: %w", f.file, err)
	}
	base, err := filepath.Abs(filepath.Dir(f.file))
	if err != nil {
		return inventory.File{}, nil, err
	}
	if f.jobs < 1 {
		return inventory.File{}, nil, fmt.Errorf("--jobs %d: want 1 or more", f.jobs)
	}
	return file, &inventory.Sources{Base: base, CacheDir: f.cacheDir}, nil
}

// servicesReport is what pave services prints with -o json|yaml, and
// what GET /api/v1/services/fleet returns.
type servicesReport struct {
	TemplateLatest int                 `json:"templateLatest"`
	KitLatest      string              `json:"kitLatest"`
	Services       []inventory.Service `json:"services"`
}

func servicesCommand(g *globals) *cobra.Command {
	var (
		ff      fleetFlags
		vulnDB  string
		kitNew  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "services",
		Short: "Inventory of the fleet's service repositories: template and kit drift, Go version, vulnerabilities, last release, owner",
		Long: `Read the fleet file (fleet.yaml: the service repositories, as local paths or Git
URLs cloned into a cache) and report per service: the template version and how
far behind the newest it is, the kit version, the Go version, the known
vulnerabilities of its module graph (golang.org/x/vuln's scanner against the
database of --vulndb, a directory or URL, so CI can use an offline copy), the
last release and its result (from the control plane; "unknown" when it cannot
be reached), and the owner (CODEOWNERS, else .pave.yaml).

Rows come vulnerable and oldest first. A repository that is not a Pave service,
a dirty tree or an unreachable remote is reported in its row; the others
proceed. Exits 1 when a service has a known vulnerability or could not be read.
See docs/services.md.`,
		Example: `  pave services
  pave services --fleet platform/fleet.yaml --vulndb ~/.cache/pave-tools/vulndb/v0.0.0-…
  pave services -o json | jq '.services[] | select(.vulns | length > 0) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, sources, err := ff.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			stderr := cmd.ErrOrStderr()
			opts := inventory.Options{
				Sources: sources, VulnDB: vulnDB, KitLatest: kitNew, Jobs: ff.jobs,
				Releases: inventory.ReleaseList(func(ctx context.Context) ([]release.Release, error) {
					ctx, cancel := context.WithTimeout(ctx, timeout)
					defer cancel()
					var rs []release.Release
					err := g.client().Do(ctx, http.MethodGet, "/api/v1/releases", nil, &rs)
					return rs, err
				}),
			}
			if isTerminal(stderr) && !g.machine() {
				opts.Progress = func(done, total int, s inventory.Service) {
					fmt.Fprintf(stderr, "\r\033[K[%d/%d] %s", done, total, s.Name)
					if done == total {
						fmt.Fprint(stderr, "\r\033[K")
					}
				}
			}
			if vulnDB != "" {
				if _, err := inventory.DBURL(vulnDB); err != nil {
					return err
				}
			}
			rows := inventory.Inventory(ctx, file, opts)
			rep := servicesReport{TemplateLatest: scaffold.CurrentVersion(), KitLatest: kitNew, Services: rows}
			if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printServices(w, rep, g.wide()) }); err != nil {
				return err
			}
			bad, vulnerable := 0, 0
			for _, r := range rows {
				if r.Error != "" {
					bad++
				}
				if len(r.Vulns) > 0 {
					vulnerable++
				}
			}
			if bad+vulnerable > 0 {
				return exitCode{code: 1, msg: fmt.Sprintf("%d service(s) with known vulnerabilities, %d that could not be read", vulnerable, bad)}
			}
			return nil
		},
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&vulnDB, "vulndb", os.Getenv("PAVE_VULNDB"), "vulnerability database: a directory (scripts/deps.sh builds one offline) or a URL such as https://vuln.go.dev (env PAVE_VULNDB; empty skips the scan)")
	cmd.Flags().StringVar(&kitNew, "kit-latest", scaffold.DefaultKitVersion, "the newest kit version: services requiring an older one are marked behind")
	cmd.Flags().DurationVar(&timeout, "release-timeout", 5*time.Second, "how long to wait for the control plane's releases before reporting them unknown")
	return cmd
}

func printServices(w io.Writer, rep servicesReport, wide bool) {
	if len(rep.Services) == 0 {
		fmt.Fprintln(w, "no services in the fleet file")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "SERVICE\tTEMPLATE\tKIT\tGO\tVULNS\tLAST RELEASE\tOWNER"
	if wide {
		head += "\tSOURCE\tCOMMIT"
	}
	fmt.Fprintln(tw, head)
	var problems []string
	for _, s := range rep.Services {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-", s.Name)
			problems = append(problems, fmt.Sprintf("%s (%s): %s", s.Name, s.Source, s.Error))
		} else {
			tmpl := fmt.Sprintf("v%d", s.TemplateVersion)
			if s.TemplateBehind > 0 {
				tmpl += fmt.Sprintf(" (%d behind)", s.TemplateBehind)
			}
			kit := s.KitVersion
			if s.KitBehind {
				kit += " (behind)"
			}
			vulns := "-"
			switch {
			case s.VulnError != "":
				vulns = "unchecked"
				problems = append(problems, fmt.Sprintf("%s: vulnerabilities %s", s.Name, s.VulnError))
			case len(s.Vulns) > 0:
				ids := make([]string, 0, len(s.Vulns))
				for _, v := range s.Vulns {
					ids = append(ids, v.ID)
				}
				vulns = fmt.Sprintf("%d: %s", len(ids), strings.Join(ids, ","))
			default:
				vulns = "0"
			}
			rel := "none"
			switch {
			case s.ReleaseUnknown != "":
				rel = "unknown"
			case s.LastRelease != nil:
				rel = s.LastRelease.Version + " " + strings.ReplaceAll(s.LastRelease.Phase, "_", " ")
			}
			name := s.Name
			if s.Dirty {
				name += " (dirty)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", name, tmpl, kit, s.GoVersion, vulns, rel, s.Owner)
		}
		if wide {
			commit := s.Commit
			if len(commit) > 12 {
				commit = commit[:12]
			}
			fmt.Fprintf(tw, "\t%s\t%s", s.Source, commit)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, s := range rep.Services {
		if s.ReleaseUnknown != "" {
			fmt.Fprintf(w, "\nlast releases %s\n", s.ReleaseUnknown)
			break
		}
	}
	for _, s := range rep.Services {
		for _, v := range s.Vulns {
			fix := "no fix yet"
			if v.FixedIn != "" {
				fix = "fixed in " + v.FixedIn + ": go get " + v.Module + "@" + v.FixedIn
			}
			problems = append(problems, fmt.Sprintf("%s: %s in %s@%s (%s)", s.Name, v.ID, v.Module, v.Version, fix))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(w)
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
	}
}

func defaultFleetCache() string { return inventory.DefaultCacheDir() }
