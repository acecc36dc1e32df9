package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/scaffold"
)

func init() { register(upgradeCommand) }

func upgradeCommand(g *globals) *cobra.Command {
	var (
		dryRun, check, force bool
		to                   int
		all                  allFlags
	)
	cmd := &cobra.Command{
		Use:   "upgrade [DIR]",
		Short: "Merge the newest service template into a repository made by pave new",
		Long: `Bring a newer template version into a service: render the version recorded in
.pave.yaml (base) and the new one (theirs) with the recorded answers, and
three-way merge each file with the repository (ours). Files the template did
not change are left alone; clean merges are applied; conflicts are written
with <<<<<<< ours / ||||||| base / ======= / >>>>>>> theirs markers and listed;
files the team deleted stay deleted. .pave.yaml then records the new version.

Refuses a dirty git tree unless --force. Exits 1 when conflicts were written.
--check exits 1 when the repository is behind the current template (for CI).`,
		Example: `  pave upgrade --check
  pave upgrade --dry-run
  pave upgrade ./services/orders
  pave upgrade --all --fleet platform/fleet.yaml --jobs 8
  pave upgrade --all --kit v0.2.0 --only 'pay-*' --push`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all.all {
				if len(args) > 0 || dryRun || check || force {
					return fmt.Errorf("--all works from the fleet file: it takes no DIR, --dry-run, --check or --force")
				}
				return runUpgradeAll(cmd, g, &all, to)
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			w := cmd.OutOrStdout()
			if check {
				recorded, current, err := scaffold.Check(dir)
				if err != nil {
					return err
				}
				v := map[string]any{"dir": dir, "recorded": recorded, "current": current, "behind": recorded < current}
				if err := g.print(w, v, func(w io.Writer) {
					if recorded >= current {
						fmt.Fprintf(w, "up to date: template version %d\n", recorded)
					}
				}); err != nil {
					return err
				}
				if recorded < current {
					return exitCode{code: 1, msg: fmt.Sprintf("template version %d is behind the current %d: run pave upgrade", recorded, current)}
				}
				return nil
			}
			res, err := scaffold.Upgrade(cmd.Context(), scaffold.UpgradeOptions{Dir: dir, Version: to, DryRun: dryRun, Force: force})
			if err != nil {
				return err
			}
			if err := g.print(w, res, func(w io.Writer) { printUpgrade(w, res) }); err != nil {
				return err
			}
			if len(res.Conflicts) > 0 && !res.DryRun {
				return exitCode{code: 1, msg: fmt.Sprintf("%d file(s) need you: resolve them, then commit", len(res.Conflicts))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the unified diff of the upgrade and write nothing")
	cmd.Flags().BoolVar(&check, "check", false, "exit 1 when the repository is behind the current template version")
	cmd.Flags().BoolVar(&force, "force", false, "run on a dirty git tree, or outside git")
	cmd.Flags().IntVar(&to, "to", 0, "upgrade to this template version (default the current one)")
	all.add(cmd)
	return cmd
}

func printUpgrade(w io.Writer, res *scaffold.UpgradeResult) {
	if res.UpToDate {
		fmt.Fprintf(w, "up to date: template version %d\n", res.From)
		return
	}
	if res.DryRun {
		io.WriteString(w, res.Diff)
		fmt.Fprintf(w, "\ndry run: template version %d -> %d would change %d file(s); nothing written\n", res.From, res.To, len(res.Changes))
	} else {
		fmt.Fprintf(w, "upgraded %s: template version %d -> %d\n", res.Dir, res.From, res.To)
	}
	for _, v := range scaffold.Versions() {
		if v.Number > res.From && v.Number <= res.To {
			fmt.Fprintf(w, "  template v%d: %s\n", v.Number, v.Summary)
		}
	}
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  %-12s %s\n", c.Action, c.Path)
	}
	if len(res.Conflicts) > 0 {
		fmt.Fprintf(w, "\nconflicts (%d):\n", len(res.Conflicts))
		for _, c := range res.Changes {
			switch c.Action {
			case scaffold.ActionConflict:
				fmt.Fprintf(w, "  %s: conflict markers at lines %v\n", c.Path, c.ConflictLines)
			case scaffold.ActionKeptOurs:
				fmt.Fprintf(w, "  %s: %s\n", c.Path, c.Note)
			}
		}
	}
}
