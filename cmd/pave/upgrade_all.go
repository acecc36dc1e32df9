package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/bulkupgrade"
)

// allFlags are pave upgrade's flags for the whole fleet.
type allFlags struct {
	fleetFlags
	all, push, noTemplate, skipTests bool
	only, kit, branch, prDir         string
}

func (a *allFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&a.all, "all", false, "upgrade every service of the fleet file, each on a new branch (see docs/services.md)")
	f.StringVar(&a.file, "fleet", "fleet.yaml", "with --all: the fleet file")
	f.StringVar(&a.cacheDir, "cache-dir", "", "with --all: where Git entries are cloned (default the user cache's pave/fleet)")
	f.IntVar(&a.jobs, "jobs", 4, "with --all: services upgraded at once")
	f.StringVar(&a.only, "only", "", "with --all: only services whose name matches this glob ('pay-*'), or owner=TEAM")
	f.StringVar(&a.kit, "kit", "", "with --all: also require this kit version (e.g. v0.2.0)")
	f.BoolVar(&a.noTemplate, "no-template", false, "with --all and --kit: bump kit only, no template upgrade")
	f.StringVar(&a.branch, "branch", "", "with --all: the branch made in each repository (default pave/upgrade-template-vN[-kit-VERSION])")
	f.BoolVar(&a.push, "push", false, "with --all: push each branch to its origin (nothing is pushed otherwise)")
	f.StringVar(&a.prDir, "pr-dir", "pave-upgrade-prs", "with --all: where the pull request description of each service is written (SERVICE.md)")
	f.BoolVar(&a.skipTests, "skip-tests", false, "with --all: run go build but not go test")
}

func runUpgradeAll(cmd *cobra.Command, g *globals, a *allFlags, to int) error {
	if a.cacheDir == "" {
		a.cacheDir = defaultFleetCache()
	}
	file, sources, err := a.load()
	if err != nil {
		return err
	}
	template := to
	if a.noTemplate {
		template = -1
	}
	stderr := cmd.ErrOrStderr()
	opts := bulkupgrade.Options{Sources: sources, Only: a.only, Template: template, Kit: a.kit, Branch: a.branch,
		Jobs: a.jobs, Push: a.push, PRDir: a.prDir, SkipTests: a.skipTests}
	if !g.machine() {
		// Progress on stderr, one line per service, so a long run is
		// visibly alive and a pipe of stdout stays the report.
		opts.Progress = func(done, total int, r bulkupgrade.Result) {
			fmt.Fprintf(stderr, "[%d/%d] %s: %s (%.0fs)\n", done, total, r.Service, r.Outcome, r.Seconds)
		}
	}
	if opts.PRDir != "" {
		if opts.PRDir, err = filepath.Abs(opts.PRDir); err != nil {
			return err
		}
	}
	rep, err := bulkupgrade.Run(cmd.Context(), file, opts)
	if err != nil {
		return err
	}
	if err := g.print(cmd.OutOrStdout(), rep, func(w io.Writer) { printUpgradeAll(w, rep) }); err != nil {
		return err
	}
	if n := rep.Summary[bulkupgrade.Conflicts] + rep.Summary[bulkupgrade.TestsFailed] + rep.Summary[bulkupgrade.Failed]; n > 0 {
		return exitCode{code: 1, msg: fmt.Sprintf("%d service(s) need a person (conflicts, failed checks or errors above)", n)}
	}
	return nil
}

func printUpgradeAll(w io.Writer, rep *bulkupgrade.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tOUTCOME\tTEMPLATE\tKIT\tDETAIL")
	for _, r := range rep.Results {
		tmpl, kit := "-", "-"
		if r.TemplateTo > 0 {
			tmpl = fmt.Sprintf("v%d->v%d", r.TemplateFrom, r.TemplateTo)
		}
		if r.KitTo != "" {
			kit = r.KitFrom + "->" + r.KitTo
		}
		detail := ""
		switch {
		case r.Error != "":
			detail = r.Error
		case r.Failure != "":
			detail = r.Failure
		case len(r.Conflicts) > 0:
			var cs []string
			for _, c := range r.Conflicts {
				if len(c.Lines) > 0 {
					cs = append(cs, fmt.Sprintf("%s (lines %v)", c.Path, c.Lines))
				} else {
					cs = append(cs, c.Path)
				}
			}
			detail = strings.Join(cs, ", ")
		case r.PRFile != "":
			detail = r.PRFile
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Service, r.Outcome, tmpl, kit, detail)
	}
	tw.Flush()
	var parts []string
	for _, o := range []string{bulkupgrade.Clean, bulkupgrade.Conflicts, bulkupgrade.TestsFailed, bulkupgrade.UpToDate, bulkupgrade.Unchanged, bulkupgrade.Skipped, bulkupgrade.Failed} {
		if n := rep.Summary[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	fmt.Fprintf(w, "\nbranch %s: %s in %.0fs; nothing pushed unless --push\n", rep.Branch, strings.Join(parts, ", "), rep.Seconds)
	if steps := rep.Steps.String(); steps != "" {
		fmt.Fprintf(w, "time by step, summed over services: %s\n", steps)
	}
}
