package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(metricsCommand) }

func metricsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "metrics", Short: "Query the embedded metrics store (PromQL) and see what it scrapes"}
	cmd.AddCommand(metricsQueryCommand(g), metricsTargetsCommand(g))
	return cmd
}

// promAnswer is the Prometheus API's envelope.
type promAnswer struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType,omitempty"`
	Error     string          `json:"error,omitempty"`
	Warnings  []string        `json:"warnings,omitempty"`
}

// promSeries is one series of a vector or matrix answer.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value,omitempty"`
	Values [][]any           `json:"values,omitempty"`
}

// promQueryData is a query answer's data.
type promQueryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func metricsQueryCommand(g *globals) *cobra.Command {
	var rng, step, timeout time.Duration
	var at string
	cmd := &cobra.Command{
		Use:   "query 'EXPR'",
		Short: "Evaluate a PromQL expression now, or over a range with --range",
		Long: `Evaluate a PromQL expression with the control plane's PromQL engine over what
the embedded store scraped: an instant query at --time (default now), or with
--range a range query ending now at --step resolution. -o json prints the
Prometheus API's data as is (what Grafana and promtool read).`,
		Example: "  pave metrics query 'sum by (version) (rate(http_server_requests_total{service=\"orders\"}[1m]))'\n" +
			"  pave metrics query 'up == 0'\n  pave metrics query 'histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))' --range 1h --step 30s",
		Args: exactArgs(1, "a PromQL expression (quote it)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			form := url.Values{"query": {args[0]}}
			path := "/api/v1/query"
			now := time.Now()
			if at != "" {
				form.Set("time", at)
			}
			if timeout > 0 {
				form.Set("timeout", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
			}
			if rng > 0 {
				if at != "" {
					return fmt.Errorf("--time is for instant queries; a range query ends now (give --range and --step only)")
				}
				if step <= 0 {
					return fmt.Errorf("--step must be positive, e.g. 30s")
				}
				if rng/step > 11000 {
					return fmt.Errorf("--range %s at --step %s is %d points; at most 11000: raise --step", rng, step, rng/step)
				}
				path = "/api/v1/query_range"
				form.Set("start", strconv.FormatInt(now.Add(-rng).Unix(), 10))
				form.Set("end", strconv.FormatInt(now.Unix(), 10))
				form.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
			}
			data, warnings, err := promGet(cmd, g, path+"?"+form.Encode())
			if err != nil {
				return err
			}
			var qd promQueryData
			if err := json.Unmarshal(data, &qd); err != nil {
				return fmt.Errorf("decode the query answer: %w", err)
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return g.print(cmd.OutOrStdout(), qd, func(w io.Writer) { printQueryResult(w, qd) })
		},
	}
	cmd.Flags().DurationVar(&rng, "range", 0, "evaluate over this range ending now (e.g. 1h) instead of at one instant")
	cmd.Flags().DurationVar(&step, "step", 30*time.Second, "resolution of a --range query")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up on the evaluation after this long (default: the engine's 2m)")
	cmd.Flags().StringVar(&at, "time", "", "instant to evaluate at (Unix seconds or RFC 3339; default now)")
	return cmd
}

// promGet calls the Prometheus API and returns its data, or the API's
// error with its type (bad_data: fix the expression; execution: it
// could not run, e.g. too many samples).
func promGet(cmd *cobra.Command, g *globals, path string) (json.RawMessage, []string, error) {
	resp, err := g.client().Raw(cmd.Context(), http.MethodGet, path, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var a promAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, nil, fmt.Errorf("decode the answer of %s: %w", path, err)
	}
	if a.Status != "success" {
		return nil, nil, fmt.Errorf("%s: %s", a.ErrorType, a.Error)
	}
	return a.Data, a.Warnings, nil
}

func printQueryResult(w io.Writer, qd promQueryData) {
	switch qd.ResultType {
	case "scalar", "string":
		var v []any
		_ = json.Unmarshal(qd.Result, &v)
		if len(v) == 2 {
			fmt.Fprintln(w, v[1])
		}
		return
	}
	var series []promSeries
	_ = json.Unmarshal(qd.Result, &series)
	if len(series) == 0 {
		fmt.Fprintln(w, "no data (empty result); `pave metrics targets` shows what is scraped")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if qd.ResultType == "vector" {
		fmt.Fprintln(tw, "SERIES\tVALUE")
		for _, s := range series {
			if len(s.Value) == 2 {
				fmt.Fprintf(tw, "%s\t%v\n", seriesName(s.Metric), s.Value[1])
			}
		}
		return
	}
	fmt.Fprintln(tw, "SERIES\tPOINTS\tFIRST\tLAST\tMIN\tMAX")
	for _, s := range series {
		if len(s.Values) == 0 {
			continue
		}
		lo, hi := "", ""
		var min, max float64
		for i, p := range s.Values {
			v, _ := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
			if i == 0 || v < min {
				min, lo = v, fmt.Sprint(p[1])
			}
			if i == 0 || v > max {
				max, hi = v, fmt.Sprint(p[1])
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%v\t%v\t%s\t%s\n", seriesName(s.Metric), len(s.Values), s.Values[0][1], s.Values[len(s.Values)-1][1], lo, hi)
	}
}

// seriesName prints a label set as PromQL writes it.
func seriesName(m map[string]string) string {
	name := m["__name__"]
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// metricsTarget is one row of `pave metrics targets`.
type metricsTarget struct {
	Pool               string            `json:"scrapePool"`
	URL                string            `json:"scrapeUrl"`
	Labels             map[string]string `json:"labels"`
	Health             string            `json:"health"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
}

func metricsTargetsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "targets",
		Short: "List what the metrics store scrapes: health, last scrape, its duration and error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, _, err := promGet(cmd, g, "/api/v1/targets")
			if err != nil {
				return err
			}
			var td struct {
				Active []metricsTarget `json:"activeTargets"`
			}
			if err := json.Unmarshal(data, &td); err != nil {
				return fmt.Errorf("decode the targets: %w", err)
			}
			return g.print(cmd.OutOrStdout(), td.Active, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				defer tw.Flush()
				fmt.Fprintln(tw, "JOB\tINSTANCE\tSERVICE\tVERSION\tCLUSTER\tHEALTH\tLAST SCRAPE\tDURATION\tERROR")
				for _, t := range td.Active {
					last := "never"
					if !t.LastScrape.IsZero() {
						last = time.Since(t.LastScrape).Round(time.Second).String() + " ago"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Pool, t.Labels["instance"], dash(t.Labels["service"]), dash(t.Labels["version"]),
						dash(t.Labels["cluster"]), t.Health, last, time.Duration(t.LastScrapeDuration*float64(time.Second)).Round(time.Microsecond), dash(t.LastError))
				}
			})
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
