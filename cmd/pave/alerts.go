package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/server"
)

func init() { register(alertsCommand) }

func alertsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Alerts firing and pending, and why one is quiet (silenced, inhibited); silences",
		Long: `Without a subcommand: every active alert of the control plane's rule engine,
firing first, then pending (its condition holds, 'for' has not passed),
inhibited (by which alert) and silenced (by whom, until when, why). Below,
the rule files refused at their last read and the notifications a
receiver has not accepted yet.`,
		Example: "  pave alerts\n  pave alerts -o json\n  pave alerts silence --match service=orders --for 2h --comment 'DB migration OPS-42'\n" +
			"  pave alerts silences\n  pave alerts expire 7ef45d49-7c90-428e-bed1-c00fe645f3aa",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v server.AlertsView
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/alerting/alerts", nil, &v); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), v, func(w io.Writer) { printAlerts(w, v) })
		},
	}
	cmd.AddCommand(alertsSilenceCommand(g), alertsSilencesCommand(g), alertsExpireCommand(g))
	cmd.AddCommand(newAlertsBacktestCmd())
	return cmd
}

func printAlerts(w io.Writer, v server.AlertsView) {
	if len(v.Alerts) == 0 {
		fmt.Fprintln(w, "no active alerts (rules: GET /api/v1/rules; rule files: setting rule-files)")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STATE\tALERT\tLABELS\tSINCE\tWHY")
		for _, a := range v.Alerts {
			since := a.ActiveAt
			if !a.FiredAt.IsZero() {
				since = a.FiredAt
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.State, a.Name, labelList(a.Labels), ago(since), a.Why)
		}
		tw.Flush()
	}
	for _, e := range v.RuleFileErrors {
		fmt.Fprintf(w, "\nrule file refused (its previous version keeps running): %s\n  %s\n", e.File, e.Err)
	}
	if len(v.FailingDeliveries) > 0 {
		fmt.Fprintln(w, "\nnotifications not delivered:")
		for _, d := range v.FailingDeliveries {
			next := ""
			if d.State == "pending" {
				next = ", next attempt " + ago(d.NextAttempt)
			}
			fmt.Fprintf(w, "  %s/%s %s: %s after %d attempts%s: %s\n", d.Receiver, d.Integration, d.GroupKey, d.State, d.Attempts, next, d.LastError)
		}
	}
}

func labelList(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if k != "alertname" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + ls[k]
	}
	return strings.Join(parts, ",")
}

// ago says when t is relative to now ("3m ago", "in 2h").
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}

func alertsSilenceCommand(g *globals) *cobra.Command {
	var match, comment string
	var dur time.Duration
	cmd := &cobra.Command{
		Use:   "silence --match MATCHERS --for DURATION --comment TEXT",
		Short: "Silence the alerts the matchers select, for a while, saying why (needs a deployer token)",
		Long: `Create a silence in the embedded Alertmanager: the alerts whose labels match
every matcher are not notified until it ends (they still show, as silenced,
with the author and the comment). Matchers as amtool takes them:
service=orders, 'service=orders,severity=~"page|ticket"', cluster!=east.
The author is the name of the token used.`,
		Example: "  pave alerts silence --match service=orders --for 2h --comment 'DB migration OPS-42'\n" +
			"  pave alerts silence --match 'service=orders,severity=ticket' --for 30m --comment 'known, fix deploying'",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := alert.ParseMatchers(match); err != nil {
				return usageError(cmd, fmt.Errorf("--match: %w", err))
			}
			if dur <= 0 {
				return usageError(cmd, fmt.Errorf("--for must be a positive duration, e.g. 2h"))
			}
			if strings.TrimSpace(comment) == "" {
				return usageError(cmd, fmt.Errorf("--comment is required: say why, e.g. --comment 'DB migration OPS-42'"))
			}
			var sil alert.Silence
			req := server.SilenceRequest{Matchers: match, Duration: dur.String(), Comment: comment}
			if err := g.client().Do(cmd.Context(), http.MethodPost, "/api/v1/alerting/silences", req, &sil); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), sil, func(w io.Writer) {
				fmt.Fprintf(w, "silence %s: %s until %s (%s), by %s\n  expire it early with `pave alerts expire %s`\n",
					sil.ID, strings.Join(sil.Matchers, ","), sil.EndsAt.Local().Format(time.RFC3339), dur, sil.CreatedBy, sil.ID)
			})
		},
	}
	cmd.Flags().StringVar(&match, "match", "", "label matchers, e.g. service=orders or 'service=orders,severity=~\"page|ticket\"'")
	cmd.Flags().DurationVar(&dur, "for", 0, "how long the silence lasts, e.g. 2h")
	cmd.Flags().StringVar(&comment, "comment", "", "why (shown with every alert it silences)")
	return cmd
}

func alertsSilencesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "silences",
		Short:   "List silences: active, pending and recently expired",
		Example: "  pave alerts silences\n  pave alerts silences -o yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var sils []alert.Silence
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/alerting/silences", nil, &sils); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), sils, func(w io.Writer) {
				if len(sils) == 0 {
					fmt.Fprintln(w, "no silences; create one with `pave alerts silence --match service=NAME --for 2h --comment WHY`")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tENDS\tBY\tCOMMENT")
				for _, s := range sils {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, strings.Join(s.Matchers, ","), ago(s.EndsAt), s.CreatedBy, s.Comment)
				}
				tw.Flush()
			})
		},
	}
}

func alertsExpireCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "expire ID",
		Short:   "End a silence now (needs a deployer token)",
		Example: "  pave alerts expire 7ef45d49-7c90-428e-bed1-c00fe645f3aa",
		Args:    exactArgs(1, "the silence's ID (`pave alerts silences` lists them)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.client().Do(cmd.Context(), http.MethodDelete, "/api/v1/alerting/silences/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "silence %s expired\n", args[0])
			return nil
		},
	}
}
