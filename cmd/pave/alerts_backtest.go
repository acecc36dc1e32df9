package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/alert/backtest"
)

// backtestReport is what `pave alerts backtest` prints: one score per
// rule set, side by side.
type backtestReport struct {
	From     time.Time        `json:"from"`
	To       time.Time        `json:"to"`
	Step     string           `json:"step"`
	RuleSets []backtest.Score `json:"ruleSets"`
}

// newAlertsBacktestCmd is `pave alerts backtest`: replay rule files over a
// history and measure how well they page. It runs locally (no control
// plane): the history is a generated set, a series file or a metrics store
// directory.
func newAlertsBacktestCmd() *cobra.Command {
	var (
		ruleSets                          []string
		from, to, incidentsFile, output   string
		seriesFile, generateFile, tsdbDir string
		writeIncidents                    string
		step                              time.Duration
		noPrune, stepwise                 bool
	)
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Replay rule files over a history and score their pages against labelled incidents",
		Long: `Replays each rule set (--rules, repeatable; comma-separated files form one set)
with Prometheus' own promql engine and rule evaluation over a history: one
range query per rule over the whole history, and the alert state of every
step by Prometheus' AlertingRule.Eval (--stepwise: rules.Group.Eval at every
step, as the rules manager; much slower, same alerts). It reports per rule set: precision, recall, median detection and
reset time against the labelled incidents, pages per week and the error
budget burnt before detection. Only alerts labelled severity=page count.

The history is one of:
  --generate SPEC   a generated set (YAML: start, days, services, step, dayRPS,
                    nightPerMinute, nightErrors, baseErrorRatio, objective, seed);
                    it labels its own incidents
  --series FILE     promtool-style input_series with start and interval
  --tsdb DIR        a metrics store's tsdb directory (pave up's data), with
                    --from, --to and --incidents`,
		Example: `  pave alerts backtest --rules pave.yaml --rules threshold.yaml --generate history.yaml
  pave alerts backtest --rules orders-slo.yaml --tsdb ~/.local/share/pave/metrics \
      --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --incidents incidents.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := parseOutput(output)
			if err != nil {
				return err
			}
			if format.kind != outText && format.kind != outJSON && format.kind != outYAML {
				return fmt.Errorf("-o %s: backtest prints text, json or yaml", format.kind)
			}
			if len(ruleSets) == 0 {
				return fmt.Errorf("no rule files: give --rules FILE (repeat it to compare rule sets side by side)")
			}
			sources := 0
			for _, s := range []string{seriesFile, generateFile, tsdbDir} {
				if s != "" {
					sources++
				}
			}
			if sources != 1 {
				return fmt.Errorf("give exactly one history: --generate SPEC, --series FILE or --tsdb DIR")
			}
			if step < time.Second {
				return fmt.Errorf("--step %s: want 1s or more (the rules' evaluation interval, e.g. 1m)", step)
			}
			var (
				series    []backtest.Series
				incidents []backtest.Incident
				start     time.Time
				end       time.Time
			)
			switch {
			case generateFile != "":
				data, err := os.ReadFile(generateFile)
				if err != nil {
					return err
				}
				spec, err := backtest.ParseGenerateSpec(data)
				if err != nil {
					return fmt.Errorf("%s: %w", generateFile, err)
				}
				gen, err := backtest.Generate(spec)
				if err != nil {
					return fmt.Errorf("%s: %w", generateFile, err)
				}
				series, incidents, start, end = gen.Series, gen.Incidents, gen.From, gen.To
			case seriesFile != "":
				data, err := os.ReadFile(seriesFile)
				if err != nil {
					return err
				}
				if series, start, end, err = backtest.ParseSeriesFile(data, backtest.SeriesDescParser(parser.NewParser(parser.Options{}))); err != nil {
					return fmt.Errorf("%s: %w", seriesFile, err)
				}
			}
			if incidentsFile != "" {
				data, err := os.ReadFile(incidentsFile)
				if err != nil {
					return err
				}
				if incidents, err = backtest.ParseIncidents(data); err != nil {
					return fmt.Errorf("%s: %w", incidentsFile, err)
				}
			}
			if writeIncidents != "" {
				b, err := backtest.MarshalIncidents(incidents)
				if err != nil {
					return err
				}
				if err := os.WriteFile(writeIncidents, b, 0o644); err != nil {
					return err
				}
			}
			if len(incidents) == 0 {
				return fmt.Errorf("no incidents to score against: give --incidents FILE (incidents: [{service, start, end, expect: page|silent}]) or --generate SPEC")
			}
			for _, f := range []struct {
				name string
				v    string
				t    *time.Time
			}{{"from", from, &start}, {"to", to, &end}} {
				if f.v == "" {
					continue
				}
				if *f.t, err = time.Parse(time.RFC3339, f.v); err != nil {
					return fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z", f.name, f.v)
				}
			}
			if start.IsZero() || end.IsZero() {
				return fmt.Errorf("--tsdb needs --from and --to (RFC 3339)")
			}
			report := backtestReport{From: start, To: end, Step: step.String()}
			for _, set := range ruleSets {
				files := strings.Split(set, ",")
				firings, err := backtest.Replay(cmd.Context(), backtest.Options{RuleFiles: files, Series: series, History: tsdbDir,
					From: start, To: end, Step: step, Prune: !noPrune, Stepwise: stepwise})
				if err != nil {
					return err
				}
				report.RuleSets = append(report.RuleSets, backtest.Evaluate(set, firings, incidents, start, end, step))
			}
			if format.kind != outText {
				return format.write(cmd.OutOrStdout(), report)
			}
			printBacktest(cmd.OutOrStdout(), report)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&ruleSets, "rules", nil, "a rule set: rule file(s), comma-separated; repeat to compare sets side by side")
	f.StringVar(&from, "from", "", "start of the replay (RFC 3339; default: the history's start)")
	f.StringVar(&to, "to", "", "end of the replay (RFC 3339; default: the history's end)")
	f.StringVar(&incidentsFile, "incidents", "", "labelled incident windows (YAML incidents: [{service, kind, start, end, expect: page|silent, budget}])")
	f.StringVar(&seriesFile, "series", "", "history as promtool-style input_series (YAML with start and interval)")
	f.StringVar(&generateFile, "generate", "", "generate the history from this spec (YAML); it labels its own incidents")
	f.StringVar(&tsdbDir, "tsdb", "", "history from a metrics store's tsdb directory (read only)")
	f.StringVar(&writeIncidents, "write-incidents", "", "also write the incidents scored against to this file")
	f.DurationVar(&step, "step", time.Minute, "evaluation interval")
	f.BoolVar(&noPrune, "no-prune", false, "evaluate recording rules no alert reads too (slower; same pages)")
	f.BoolVar(&stepwise, "stepwise", false, "evaluate every group at every step as Prometheus' rules manager does (much slower; same pages)")
	f.StringVarP(&output, "output", "o", outText, "output format: text, json or yaml")
	return cmd
}

// printBacktest prints the rule sets as columns.
func printBacktest(w io.Writer, r backtestReport) {
	fmt.Fprintf(w, "Backtest %s to %s, every %s\n\n", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), r.Step)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, cell func(backtest.Score) string) {
		fmt.Fprint(tw, name)
		for _, s := range r.RuleSets {
			fmt.Fprint(tw, "\t"+cell(s))
		}
		fmt.Fprintln(tw)
	}
	row("RULE SET", func(s backtest.Score) string { return s.RuleSet })
	row("pages", func(s backtest.Score) string { return fmt.Sprint(s.Pages) })
	row("false pages", func(s backtest.Score) string { return fmt.Sprint(s.FalsePages) })
	row("pages/week", func(s backtest.Score) string { return fmt.Sprintf("%.1f", s.PagesPerWeek) })
	row("precision", func(s backtest.Score) string { return fmt.Sprintf("%.3f", s.Precision) })
	row("recall", func(s backtest.Score) string { return fmt.Sprintf("%.3f", s.Recall) })
	row("median detection", func(s backtest.Score) string { return time.Duration(s.MedianDetection).String() })
	row("median reset", func(s backtest.Score) string { return time.Duration(s.MedianReset).String() })
	row("budget before detection", func(s backtest.Score) string { return fmt.Sprintf("%.2f%%", 100*s.BudgetBeforeDetection) })
	if len(r.RuleSets) > 0 {
		for i, k := range r.RuleSets[0].Kinds {
			row(fmt.Sprintf("%s (%s): paged/of", k.Kind, k.Expect), func(s backtest.Score) string {
				if i >= len(s.Kinds) {
					return "-"
				}
				return fmt.Sprintf("%d/%d, detect %s", s.Kinds[i].Paged, s.Kinds[i].Incidents, time.Duration(s.Kinds[i].MedianDetection))
			})
		}
	}
	tw.Flush()
}
