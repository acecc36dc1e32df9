// Package backtest replays Prometheus rule files over a history of series
// with the real promql engine and rules evaluation (one range query per
// rule and the rule's own Eval at every step, see rangeeval.go; or
// rules.Group.Eval at every step, as promtool's unit tests do) and scores
// the pages against labelled incident windows: precision, recall,
// detection and reset time, pages per week and the error budget burnt
// before detection.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.yaml.in/yaml/v3"
)

// Options of one replay.
type Options struct {
	// RuleFiles are the files of one rule set.
	RuleFiles []string
	// Series is the history; History, when set, is a tsdb directory (the
	// metrics store's) read besides it.
	Series  []Series
	History string
	// From and To bound the evaluation; Step is the evaluation interval
	// (default 1m).
	From, To time.Time
	Step     time.Duration
	// Severity is the label value that counts as a page (default "page").
	Severity string
	// Severities, when set, replaces Severity: firings of alerts with any
	// of these severities are returned (a benchmark scoring tickets too).
	Severities []string
	// Prune drops recording rules no alerting rule reads (directly or
	// through other recordings): they cannot change what pages.
	Prune bool
	// Stepwise evaluates every group with rules.Group.Eval at every step,
	// as Prometheus' rules manager does, instead of one range query per
	// rule over the whole history (see evalRange). It is much slower and
	// gives the same firings; the range evaluation is tested against it,
	// and falls back to it for rule sets it cannot evaluate exactly.
	Stepwise bool
}

// Firing is one contiguous interval an alert fired.
type Firing struct {
	Alert   string            `json:"alert"`
	Labels  map[string]string `json:"labels"`
	Start   time.Time         `json:"start"`
	End     time.Time         `json:"end"` // last evaluation it fired at
	Service string            `json:"service,omitempty"`
}

// Replay evaluates the rule set over the history and returns every
// interval a page-severity alert (or one of Severities) fired.
func Replay(ctx context.Context, o Options) ([]Firing, error) {
	if o.Step == 0 {
		o.Step = time.Minute
	}
	if o.Severity == "" {
		o.Severity = "page"
	}
	if len(o.Severities) == 0 {
		o.Severities = []string{o.Severity}
	}
	if !o.To.After(o.From) {
		return nil, fmt.Errorf("backtest: --to %s is not after --from %s", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339))
	}
	dir, err := os.MkdirTemp("", "pave-backtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	files, err := prepareRuleFiles(dir, o.RuleFiles, o.Prune)
	if err != nil {
		return nil, err
	}
	opts := tsdb.DefaultOptions()
	// One head block for the whole history: no compaction while replaying.
	// The head takes samples down to half its block span before its
	// newest one, and the series reach To before the first recording is
	// written at From: twice the history, and a month for what precedes it.
	span := 2 * (o.To.Sub(o.From) + 31*24*time.Hour)
	opts.MinBlockDuration = span.Milliseconds()
	opts.MaxBlockDuration = span.Milliseconds()
	opts.RetentionDuration = 0
	// A replay reads and writes from one goroutine and is thrown away:
	// no isolation (its per-read bookkeeping was a third of a replay's
	// time) and no WAL.
	opts.IsolationDisabled = true
	opts.WALSegmentSize = -1
	db, err := tsdb.Open(filepath.Join(dir, "tsdb"), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("backtest: temporary tsdb: %w", err)
	}
	defer db.Close()
	if err := load(ctx, db, o.Series); err != nil {
		return nil, err
	}
	var st storage.Storage = db
	if o.History != "" {
		ro, err := tsdb.OpenDBReadOnly(o.History, dir, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, fmt.Errorf("backtest: history %s: %w", o.History, err)
		}
		defer ro.Close()
		st = storage.NewFanout(slog.New(slog.DiscardHandler), db, readOnly{ro})
	}
	// A range query spans the whole history: no per-query timeout (ctx
	// stops a replay).
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 24 * time.Hour, LookbackDelta: 5 * time.Minute})
	defer engine.Close()
	mgr := rules.NewManager(&rules.ManagerOptions{
		QueryFunc: rules.EngineQueryFunc(engine, st), AppendableV2: st, Queryable: st,
		Context: ctx, NotifyFunc: func(context.Context, string, ...*rules.Alert) {},
		Logger: slog.New(slog.DiscardHandler), NameValidationScheme: model.UTF8Validation,
	})
	groupMap, errs := mgr.LoadGroups(o.Step, labels.EmptyLabels(), "", nil, false, files...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("backtest: %w", errors.Join(errs...))
	}
	groups := make([]*rules.Group, 0, len(groupMap))
	for _, g := range groupMap {
		groups = append(groups, g)
	}
	sortGroups(groups)
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true)
			}
		}
	}
	steps := int(o.To.Sub(o.From)/o.Step) + 1
	if !o.Stepwise {
		if why := rangeable(groups); why == "" {
			fired, err := evalRange(ctx, engine, st, groups, o.From, o.Step, steps, o.Severities)
			if err == nil {
				return fired.firings(o.From, o.Step), nil
			}
			if !errors.Is(err, errNeedSteps) {
				return nil, err
			}
			// A range query failed where an instant query may fail at
			// a few steps only (duplicate series, say): start again
			// stepwise on fresh rules and storage.
			o.Stepwise = true
			return Replay(ctx, o)
		}
	}
	fired := newFiredSet(steps)
	for i := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ts := o.From.Add(time.Duration(i) * o.Step)
		for _, g := range groups {
			g.Eval(ctx, ts)
		}
		for _, g := range groups {
			for _, r := range g.Rules() {
				if ar, ok := r.(*rules.AlertingRule); ok {
					fired.mark(ar, i, o.Severities)
				}
			}
		}
	}
	return fired.firings(o.From, o.Step), nil
}

// sortGroups orders groups as a replay evaluates them at each step: groups
// of recording rules only first, so alerts read the ratios of the same
// evaluation (Sloth puts recordings and alerts in separate groups;
// Prometheus staggers groups within the interval, so this is the most
// favourable timing, not an added step of lag), then by file and name.
func sortGroups(groups []*rules.Group) {
	sort.Slice(groups, func(i, j int) bool {
		if ai, aj := hasAlerts(groups[i]), hasAlerts(groups[j]); ai != aj {
			return aj
		}
		return groups[i].File()+groups[i].Name() < groups[j].File()+groups[j].Name()
	})
}

func hasAlerts(g *rules.Group) bool {
	return slices.ContainsFunc(g.Rules(), func(r rules.Rule) bool { _, ok := r.(*rules.AlertingRule); return ok })
}

// load appends the series to db.
func load(ctx context.Context, db *tsdb.DB, series []Series) error {
	for _, s := range series {
		app := db.Appender(ctx)
		var ref storage.SeriesRef
		for _, p := range s.Samples {
			var err error
			if ref, err = app.Append(ref, s.Labels, p.T, p.V); err != nil {
				app.Rollback()
				return fmt.Errorf("backtest: loading %s: %w", s.Labels, err)
			}
		}
		if err := app.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// readOnly adapts a read-only tsdb to storage.Storage for the fanout.
type readOnly struct{ db *tsdb.DBReadOnly }

func (r readOnly) Querier(mint, maxt int64) (storage.Querier, error) { return r.db.Querier(mint, maxt) }
func (r readOnly) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return r.db.ChunkQuerier(mint, maxt)
}
func (readOnly) StartTime() (int64, error)                     { return math.MinInt64, nil }
func (readOnly) Appender(context.Context) storage.Appender     { return nil }
func (readOnly) AppenderV2(context.Context) storage.AppenderV2 { return nil }
func (readOnly) Close() error                                  { return nil }

// prepareRuleFiles checks each file with Prometheus' parser (errors name
// the file and line) and, with prune, writes copies without the recording
// rules no alert depends on.
func prepareRuleFiles(dir string, files []string, prune bool) ([]string, error) {
	if len(files) == 0 {
		return nil, errors.New("backtest: no rule files: give --rules FILE")
	}
	var out []string
	for i, f := range files {
		rgs, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
		if len(errs) > 0 {
			return nil, fmt.Errorf("backtest: %w", errors.Join(errs...))
		}
		if !prune {
			out = append(out, f)
			continue
		}
		pruneRecordings(rgs)
		b, err := yaml.Marshal(rgs)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("rules-%d.yaml", i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// pruneRecordings removes recording rules whose series no alerting rule
// reads, directly or through other recordings.
func pruneRecordings(rgs *rulefmt.RuleGroups) {
	p := parser.NewParser(parser.Options{})
	names := func(expr string) []string {
		e, err := p.ParseExpr(expr)
		if err != nil {
			return nil
		}
		var out []string
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				out = append(out, vs.Name)
			}
			return nil
		})
		return out
	}
	needed := map[string]bool{}
	var queue []string
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				queue = append(queue, names(r.Expr)...)
			}
		}
	}
	byName := map[string][]string{}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				byName[r.Record] = append(byName[r.Record], r.Expr)
			}
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if needed[n] {
			continue
		}
		needed[n] = true
		for _, e := range byName[n] {
			queue = append(queue, names(e)...)
		}
	}
	for gi := range rgs.Groups {
		g := &rgs.Groups[gi]
		g.Rules = slices.DeleteFunc(g.Rules, func(r rulefmt.Rule) bool { return r.Record != "" && !needed[r.Record] })
	}
	rgs.Groups = slices.DeleteFunc(rgs.Groups, func(g rulefmt.RuleGroup) bool { return len(g.Rules) == 0 })
}
