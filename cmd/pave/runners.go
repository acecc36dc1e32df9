package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/runners"
)

func init() { register(runnersCommand) }

func runnersCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runners",
		Short: "CI runner pools that scale by time of day and by queue",
		Long: `Runner pools (kind RunnerPool): bounds, cron schedules in IANA time zones, scale-up
on queued GitHub jobs (workflow_job webhooks at POST /hooks/github), idle scale-down
and a daily runner-hours budget.

  pave runners apply -f pools/linux.yaml
  pave runners status
  pave runners suggest --pool linux --time-zone Asia/Seoul
  pave runners delete linux

See docs/runners.md.`,
	}
	cmd.AddCommand(runnersApplyCommand(g), runnersStatusCommand(g), runnersSuggestCommand(g), runnersDeleteCommand(g))
	return cmd
}

func runnersApplyCommand(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace a runner pool from its spec (needs an admin token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE is required: the RunnerPool spec to apply (YAML or JSON)")
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			// Checked here first, so a typo is named with the file before
			// anything is sent.
			p, err := runners.Parse(b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			js, err := yaml.YAMLToJSON(b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			var applied json.RawMessage
			if err := g.client().Do(cmd.Context(), http.MethodPost, "/api/v1/runnerpools", json.RawMessage(js), &applied); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), applied, func(out io.Writer) {
				fmt.Fprintf(out, "runnerpool/%s applied: %d–%d runners, %d schedule(s)\n", p.Metadata.Name, p.Spec.Min, p.Spec.Max, len(p.Spec.Schedules))
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "RunnerPool spec file (YAML or JSON)")
	return cmd
}

// runnersStatus is GET /api/v1/runnerpools.
type runnersStatus struct {
	Pools   []runners.PoolStatus `json:"pools"`
	Webhook runners.QueueStats   `json:"webhook"`
}

func runnersStatusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Per pool: runners busy/idle, queue length and age, active schedule windows, today's runner-hours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st runnersStatus
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/runnerpools", nil, &st); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), st, func(out io.Writer) { printRunnersStatus(out, st) })
		},
	}
}

func printRunnersStatus(out io.Writer, st runnersStatus) {
	if len(st.Pools) == 0 {
		fmt.Fprintln(out, "no runner pools: apply one with `pave runners apply -f FILE` (docs/runners.md)")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tRUNNERS\tBUSY\tIDLE\tQUEUED\tOLDEST\tDESIRED\tWINDOW\tHOURS TODAY\tTARGET")
	for _, p := range st.Pools {
		window := strings.Join(p.Windows, ", ")
		if window == "" {
			window = "-"
		}
		hours := fmt.Sprintf("%.1f", p.RunnerHoursToday)
		if p.BudgetPerDay > 0 {
			hours += fmt.Sprintf("/%.0f", p.BudgetPerDay)
			if p.BudgetExhausted {
				hours += " (spent)"
			}
		}
		target := "ok"
		if p.TargetError != "" {
			target = "unreachable, retry " + p.RetryAt + ": " + p.TargetError
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.Runners, p.Busy, p.Idle, p.Queued,
			(time.Duration(p.OldestQueuedSecs) * time.Second).Round(time.Second), p.Desired, window, hours, target)
	}
	tw.Flush()
	if gh := st.Webhook.GitHub; gh.Enabled {
		line := fmt.Sprintf("github: last reconciled %s, %d queued/running jobs listed, %d missed events recorded", gh.Last.Local().Format(time.TimeOnly), gh.Seen, gh.Changes)
		if gh.Error != "" {
			line += "; error: " + gh.Error
		}
		fmt.Fprintln(out, line)
	}
	if st.Webhook.BadSignatures > 0 {
		fmt.Fprintf(out, "webhook: %d deliveries refused for a bad signature (check the GitHub webhook's secret against github-webhook-secret)\n", st.Webhook.BadSignatures)
	}
}

// runnersSuggestion is GET /api/v1/runnerpools/{name}/suggest.
type runnersSuggestion struct {
	Pool       string             `json:"pool"`
	Current    []runners.Schedule `json:"current"`
	Suggestion runners.Suggestion `json:"suggestion"`
}

func runnersSuggestCommand(g *globals) *cobra.Command {
	var pool, zone string
	var weeks int
	cmd := &cobra.Command{
		Use:   "suggest --pool P",
		Short: "Learn from the queue history the schedule that keeps p95 wait under target for the fewest runner-hours",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pool == "" {
				return fmt.Errorf("--pool is required (pave runners status lists the pools)")
			}
			q := url.Values{"timeZone": {zone}, "weeks": {fmt.Sprint(weeks)}}
			var s runnersSuggestion
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/runnerpools/"+url.PathEscape(pool)+"/suggest?"+q.Encode(), nil, &s); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), s, func(out io.Writer) { printSuggestion(out, s) })
		},
	}
	cmd.Flags().StringVar(&pool, "pool", "", "runner pool name")
	cmd.Flags().StringVar(&zone, "time-zone", "UTC", "IANA time zone of the learned schedules")
	cmd.Flags().IntVar(&weeks, "weeks", 2, "weeks of queue history to learn from (1-12)")
	return cmd
}

// printSuggestion shows the learned schedules as a diff of spec.schedules.
func printSuggestion(out io.Writer, s runnersSuggestion) {
	sg := s.Suggestion
	verdict := "meets"
	if !sg.Met {
		verdict = "does NOT meet (raise spec.max?)"
	}
	fmt.Fprintf(out, "# pool %s: on the history, p95 queue wait %s (%s the target), %.1f runner-hours; %d replays\n",
		s.Pool, sg.P95.Round(time.Second), verdict, sg.RunnerHours, sg.Replays)
	fmt.Fprintln(out, " spec:\n   schedules:")
	line := func(sign string, sc runners.Schedule) {
		fmt.Fprintf(out, "%s  - {cron: %q, timeZone: %s, duration: %s, min: %d, spare: %d}\n", sign, sc.Cron, sc.TimeZone, sc.Duration, sc.Min, sc.Spare)
	}
	for _, sc := range s.Current {
		line("-", sc)
	}
	for _, sc := range sg.Schedules {
		line("+", sc)
	}
}

func runnersDeleteCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a runner pool (needs an admin token): local runners stop, a Kubernetes target is left as it is",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Do(cmd.Context(), http.MethodDelete, "/api/v1/runnerpools/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "runnerpool/%s deleted\n", args[0])
			return nil
		},
	}
}
