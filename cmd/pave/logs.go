package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/telemetry"
)

func init() {
	register(logsCommand)
	register(traceCommand)
}

type logsFlags struct {
	service, version, since, from, to, level, traceID, contains, regex, cursor string
	where                                                                      []string
	limit                                                                      int
	follow, forward                                                            bool
}

func logsCommand(g *globals) *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Search the logs every service sent, newest first",
		Long: `Search stored log lines. Filters combine with AND. --where matches a column
(route, status, caller, merchant_id, cluster, datacenter, method, version, kind)
or any attribute; key!=value negates. --level returns that level and above.
Without --follow the newest --limit lines are printed, newest first (oldest
first with --forward), with a cursor for the next page; --follow (-f) keeps
printing new lines as they arrive. -o raw prints the messages alone.`,
		Example: `  pave logs --service orders --since 15m --level warn
  pave logs --where route=/v1/pay --where status=500 --limit 20
  pave logs --trace-id 4bf92f3577b34da6a3ce929d0e0e4736
  pave logs --service orders --contains timeout --follow
  pave logs --service orders --version v2 --since 10m --forward -o raw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := f.values()
			if err != nil {
				return err
			}
			if f.follow {
				return followLogs(cmd, g, v)
			}
			var res telemetry.Result
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/logs?"+v.Encode(), nil, &res); err != nil {
				return err
			}
			if f.forward {
				sort.SliceStable(res.Logs, func(i, j int) bool { return res.Logs[i].Time.Before(res.Logs[j].Time) })
			}
			if g.format.kind == outRaw {
				for i := range res.Logs {
					fmt.Fprintln(cmd.OutOrStdout(), res.Logs[i].Message)
				}
				return nil
			}
			return g.print(cmd.OutOrStdout(), res, func(out io.Writer) {
				for i := range res.Logs {
					printLogLine(out, &res.Logs[i])
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
				}
				if res.Next != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "more: add --cursor %s\n", res.Next)
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.service, "service", "", "only this service")
	fl.StringVar(&f.version, "version", "", "only this version of the service")
	fl.StringVar(&f.since, "since", "", "only lines newer than this, e.g. 15m, 1h, 24h")
	fl.StringVar(&f.from, "from", "", "start time, RFC 3339 (2026-01-02T15:04:05Z)")
	fl.StringVar(&f.to, "to", "", "end time, RFC 3339")
	fl.StringVar(&f.level, "level", "", "minimum level: debug, info, warn, error")
	fl.StringVar(&f.traceID, "trace-id", "", "only lines of this trace")
	fl.StringArrayVar(&f.where, "where", nil, "field condition key=value or key!=value (repeatable)")
	fl.StringVar(&f.contains, "contains", "", "text the message or an attribute contains")
	fl.StringVar(&f.regex, "regex", "", "regular expression the message matches (RE2)")
	fl.IntVar(&f.limit, "limit", telemetry.DefaultLimit, "lines per page")
	fl.StringVar(&f.cursor, "cursor", "", "continue after a previous page")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep printing new lines")
	fl.BoolVar(&f.forward, "forward", false, "print the page oldest first (as --follow does)")
	_ = cmd.RegisterFlagCompletionFunc("service", func(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
		return completeServices(g)(cmd, nil, prefix)
	})
	_ = cmd.RegisterFlagCompletionFunc("version", completeFlagVersions(g))
	return withCountBy(g, cmd, f.values)
}

// values checks the flags locally, with the same parser as the server, so
// mistakes are reported before any request.
func (f *logsFlags) values() (url.Values, error) {
	if f.since != "" && f.from != "" {
		return nil, fmt.Errorf("--since and --from: give one of them")
	}
	if f.contains != "" && f.regex != "" {
		return nil, fmt.Errorf("--contains and --regex: give one of them")
	}
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("service", f.service)
	set("since", f.since)
	set("from", f.from)
	set("to", f.to)
	set("level", f.level)
	set("trace_id", f.traceID)
	for _, w := range f.where {
		v.Add("where", w)
	}
	if f.version != "" {
		v.Add("where", "version="+f.version)
	}
	set("contains", f.contains)
	set("regex", f.regex)
	set("cursor", f.cursor)
	v.Set("limit", fmt.Sprint(f.limit))
	if _, err := telemetry.ParseQuery(v, time.Now()); err != nil {
		if qe, ok := err.(*telemetry.QueryError); ok {
			return nil, fmt.Errorf("--%s: %w", strings.ReplaceAll(strings.SplitN(qe.Param, "[", 2)[0], "_", "-"), qe.Err)
		}
		return nil, err
	}
	return v, nil
}

// followLogs prints the latest page oldest first, then polls for lines
// newer than the last one printed.
func followLogs(cmd *cobra.Command, g *globals, v url.Values) error {
	out := bufio.NewWriter(cmd.OutOrStdout())
	defer out.Flush()
	enc := json.NewEncoder(out)
	seen := map[string]bool{}
	var last time.Time
	v.Del("cursor")
	for {
		var res telemetry.Result
		if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/logs?"+v.Encode(), nil, &res); err != nil {
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		}
		sort.SliceStable(res.Logs, func(i, j int) bool { return res.Logs[i].Time.Before(res.Logs[j].Time) })
		next := map[string]bool{}
		for i := range res.Logs {
			l := &res.Logs[i]
			key := l.Time.Format(time.RFC3339Nano) + l.Service + l.SpanID + l.Message
			if l.Time.Equal(last) || l.Time.After(last) {
				next[key] = true
			}
			if seen[key] {
				continue
			}
			switch {
			case g.format.kind == outRaw:
				fmt.Fprintln(out, l.Message)
			case g.machine():
				_ = enc.Encode(l)
			default:
				printLogLine(out, l)
			}
			if l.Time.After(last) {
				last = l.Time
			}
		}
		// Remember only lines at the newest time: the next poll starts there.
		for k := range next {
			seen[k] = true
		}
		if len(seen) > 10000 {
			seen = next
		}
		out.Flush()
		if !last.IsZero() {
			v.Del("since")
			v.Set("from", last.UTC().Format(time.RFC3339Nano))
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func printLogLine(out io.Writer, l *telemetry.Log) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %s", l.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), l.Level, l.Service)
	if l.Version != "" {
		b.WriteString("@" + l.Version)
	}
	b.WriteString("  " + l.Message)
	if l.Kind == "access" || l.Route != "" {
		fmt.Fprintf(&b, "  route=%s status=%d duration_ms=%.3f", l.Route, l.Status, l.DurationMS)
		if l.Caller != "" {
			b.WriteString(" caller=" + l.Caller)
		}
		if l.MerchantID != "" {
			b.WriteString(" merchant_id=" + l.MerchantID)
		}
	}
	for _, kv := range l.Attrs.Sorted() {
		fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value)
	}
	if l.TraceID != "" {
		b.WriteString("  trace=" + l.TraceID)
	}
	fmt.Fprintln(out, b.String())
}

func traceCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "trace TRACE_ID",
		Short:   "Show one trace: its spans as a tree and every log line, in time order",
		Example: "  pave trace 4bf92f3577b34da6a3ce929d0e0e4736\n  pave trace 4bf92f3577b34da6a3ce929d0e0e4736 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := strings.ToLower(args[0])
			if err := telemetry.ValidTraceID(id); err != nil {
				return fmt.Errorf("trace id %q: %w", args[0], err)
			}
			var res telemetry.TraceResult
			if err := g.client().Do(cmd.Context(), http.MethodGet, "/api/v1/traces/"+id, nil, &res); err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(out io.Writer) { printTrace(out, &res) })
		},
	}
}

// printTrace interleaves spans (indented by depth) and log lines by time.
func printTrace(out io.Writer, res *telemetry.TraceResult) {
	depth := map[string]int{}
	parent := map[string]string{}
	for _, s := range res.Spans {
		parent[s.SpanID] = s.ParentID
	}
	var depthOf func(id string, n int) int
	depthOf = func(id string, n int) int {
		if d, ok := depth[id]; ok {
			return d
		}
		p, ok := parent[id]
		if !ok || p == "" || n > 64 {
			return 0
		}
		d := depthOf(p, n+1) + 1
		depth[id] = d
		return d
	}
	type row struct {
		t    time.Time
		text string
	}
	var rows []row
	var t0 time.Time
	for _, s := range res.Spans {
		if t0.IsZero() || s.Start.Before(t0) {
			t0 = s.Start
		}
	}
	for _, l := range res.Logs {
		if t0.IsZero() || l.Time.Before(t0) {
			t0 = l.Time
		}
	}
	for _, s := range res.Spans {
		status := s.Status
		if status == "" {
			status = "unset"
		}
		rows = append(rows, row{s.Start, fmt.Sprintf("+%9.3fms %sspan %s %s (%.3fms, %s)", float64(s.Start.Sub(t0).Microseconds())/1000,
			strings.Repeat("  ", depthOf(s.SpanID, 0)), s.Service, s.Name, float64(s.End.Sub(s.Start).Microseconds())/1000, status)})
	}
	for i := range res.Logs {
		l := &res.Logs[i]
		d := depthOf(l.SpanID, 0) + 1
		var b strings.Builder
		printLogLine(&b, l)
		rows = append(rows, row{l.Time, fmt.Sprintf("+%9.3fms %slog  %s", float64(l.Time.Sub(t0).Microseconds())/1000, strings.Repeat("  ", d), strings.TrimSpace(b.String()))})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })
	fmt.Fprintf(out, "trace %s: %d spans, %d log lines\n", res.TraceID, len(res.Spans), len(res.Logs))
	for _, r := range rows {
		fmt.Fprintln(out, r.text)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
}
