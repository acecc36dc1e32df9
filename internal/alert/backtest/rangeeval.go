package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Range evaluation. The rules manager evaluates every rule at every step,
// one instant query each; over a month at 1-minute steps a rule reading
// a 3-day window decodes the same 4320 samples 43200 times. evalRange
// swaps the loops: it evaluates one rule at a time over the whole history
// with a single range query (the engine slides the window, decoding each
// sample once), writes a recording rule's results and stale markers at
// every step before the next rule reads them, and feeds an alerting
// rule's results step by step to the rule's own Eval, so pending, for,
// keep_firing_for, labels and templates are Prometheus' code, not a copy.
//
// That is the rules manager's result as long as no rule reads, at a step,
// what the stepwise order has not written yet at that step: rangeable
// checks it, and TestRangeEvaluationMatchesRulesManager compares both.

// errNeedSteps: the range evaluation cannot give the stepwise result.
var errNeedSteps = errors.New("backtest: the rule set needs stepwise evaluation")

// rangeable returns why the rules in their evaluation order cannot be
// evaluated one rule at a time over the whole history, or "" when they can:
// a rule that reads a series recorded by itself or a later rule (stepwise
// it sees the previous step's value, ranged nothing or its own future),
// one that reads ALERTS (not written by the range evaluation), or one that
// reads after its evaluation time (@, a negative offset).
func rangeable(groups []*rules.Group) string {
	type recording struct {
		name   string
		labels labels.Labels
	}
	var later []recording // recordings not evaluated yet, in order
	for _, g := range groups {
		for _, r := range g.Rules() {
			if _, ok := r.(*rules.RecordingRule); ok {
				later = append(later, recording{r.Name(), r.Labels()})
			}
		}
	}
	// mayRead: a selector could match a series the recording writes (its
	// name and static labels; labels from the query are unknown).
	mayRead := func(ms []*labels.Matcher, name string, static labels.Labels) bool {
		for _, m := range ms {
			switch {
			case m.Name == labels.MetricName && !m.Matches(name):
				return false
			case static.Has(m.Name) && !m.Matches(static.Get(m.Name)):
				return false
			}
		}
		return true
	}
	for _, g := range groups {
		for _, r := range g.Rules() {
			why := ""
			check := func(off time.Duration, at *int64, startOrEnd parser.ItemType) {
				if why == "" && (off < 0 || at != nil || startOrEnd != 0) {
					why = fmt.Sprintf("%s reads after its evaluation time (@ or a negative offset)", r.Name())
				}
			}
			parser.Inspect(r.Query(), func(n parser.Node, _ []parser.Node) error {
				switch n := n.(type) {
				case *parser.SubqueryExpr:
					check(n.OriginalOffset, n.Timestamp, n.StartOrEnd)
				case *parser.VectorSelector:
					check(n.OriginalOffset, n.Timestamp, n.StartOrEnd)
					for _, name := range []string{"ALERTS", "ALERTS_FOR_STATE"} {
						if why == "" && mayRead(n.LabelMatchers, name, labels.EmptyLabels()) {
							why = fmt.Sprintf("%s may read %s", r.Name(), name)
						}
					}
					for _, rec := range later {
						if why == "" && mayRead(n.LabelMatchers, rec.name, rec.labels) {
							why = fmt.Sprintf("%s reads %s before the rule recording it", r.Name(), rec.name)
						}
					}
				}
				return nil
			})
			if why != "" {
				return why
			}
			if _, ok := r.(*rules.RecordingRule); ok {
				later = later[1:]
			}
		}
	}
	return ""
}

// evalRange evaluates the groups' rules in order, each over the whole
// history (steps evaluations from from, step apart), and returns when
// each alert with one of severities fired. A range query's error is
// errNeedSteps: stepwise, the same query may fail at a few steps only.
func evalRange(ctx context.Context, engine *promql.Engine, st storage.Storage, groups []*rules.Group, from time.Time, step time.Duration, steps int, severities []string) (*firedSet, error) {
	fired := newFiredSet(steps)
	for _, g := range groups {
		off := g.QueryOffset()
		for _, r := range g.Rules() {
			vecs, err := rangeVectors(ctx, engine, st, r.Query().String(), from.Add(-off), step, steps)
			if err != nil {
				return nil, err
			}
			switch r := r.(type) {
			case *rules.AlertingRule:
				for i, v := range vecs {
					// An error (a limit, duplicate labels) leaves the rule
					// as Group.Eval leaves it; only its health records it.
					_, _ = r.Eval(ctx, off, from.Add(time.Duration(i)*step), answer(v), nil, g.Limit())
					fired.mark(r, i, severities)
				}
			default:
				if err := record(ctx, st, r, off, g.Limit(), from, step, vecs); err != nil {
					return nil, err
				}
			}
		}
	}
	return fired, nil
}

// answer is the QueryFunc of one step: the range query's result there.
func answer(v promql.Vector) rules.QueryFunc {
	return func(context.Context, string, time.Time) (promql.Vector, error) { return v, nil }
}

// rangeVectors runs qs as a range query and returns its result as the
// instant vector of each step.
func rangeVectors(ctx context.Context, engine *promql.Engine, st storage.Queryable, qs string, start time.Time, step time.Duration, steps int) ([]promql.Vector, error) {
	q, err := engine.NewRangeQuery(ctx, st, nil, qs, start, start.Add(time.Duration(steps-1)*step), step)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errNeedSteps, qs, err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errNeedSteps, qs, res.Err)
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return nil, fmt.Errorf("%w: %s: a range query returned %s", errNeedSteps, qs, res.Value.Type())
	}
	vecs := make([]promql.Vector, steps)
	t0, dt := start.UnixMilli(), step.Milliseconds()
	for _, s := range m {
		for _, p := range s.Floats {
			i := int((p.T - t0) / dt)
			vecs[i] = append(vecs[i], promql.Sample{Metric: s.Metric, T: p.T, F: p.F})
		}
		for _, p := range s.Histograms {
			i := int((p.T - t0) / dt)
			vecs[i] = append(vecs[i], promql.Sample{Metric: s.Metric, T: p.T, H: p.H})
		}
	}
	return vecs, nil
}

// record writes a recording rule's result at every step as Group.Eval
// does: the rule's labels applied by its own Eval, nothing written at a
// step it fails, and a stale marker for each series the previous step
// wrote and this one does not.
func record(ctx context.Context, st storage.Storage, r rules.Rule, off time.Duration, limit int, from time.Time, step time.Duration, vecs []promql.Vector) error {
	opts := storage.AOptions{RejectOutOfOrder: true}
	app := st.AppenderV2(ctx)
	var prev map[string]labels.Labels
	pending := 0
	for i, v := range vecs {
		ts := from.Add(time.Duration(i) * step)
		out, err := r.Eval(ctx, off, ts, answer(v), nil, limit)
		if err != nil {
			continue
		}
		written := make(map[string]labels.Labels, len(out))
		for _, s := range out {
			// Rejected samples (another rule wrote the series) are
			// dropped as Group.Eval drops them.
			if _, err := app.Append(0, s.Metric, 0, s.T, s.F, nil, s.H, opts); err == nil {
				written[s.Metric.String()] = s.Metric
			}
		}
		for k, l := range prev {
			if _, ok := written[k]; !ok {
				_, _ = app.Append(0, l, 0, timestamp.FromTime(ts.Add(-off)), math.Float64frombits(value.StaleNaN), nil, nil, opts)
			}
		}
		prev = written
		if pending += len(out); pending >= 50_000 {
			if err := app.Commit(); err != nil {
				return fmt.Errorf("backtest: recording %s: %w", r.Name(), err)
			}
			app, pending = st.AppenderV2(ctx), 0
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("backtest: recording %s: %w", r.Name(), err)
	}
	return nil
}

// firedSet is, for each alert label set, the steps it fired at.
type firedSet struct {
	steps int
	byKey map[string]*firedSeries
}

type firedSeries struct {
	alert  string
	labels labels.Labels
	at     []bool
}

func newFiredSet(steps int) *firedSet {
	return &firedSet{steps: steps, byKey: map[string]*firedSeries{}}
}

// mark records the alerts of ar firing at step with one of severities.
func (f *firedSet) mark(ar *rules.AlertingRule, step int, severities []string) {
	for _, a := range ar.ActiveAlerts() {
		if a.State != rules.StateFiring || !slices.Contains(severities, a.Labels.Get("severity")) {
			continue
		}
		k := a.Labels.String()
		s := f.byKey[k]
		if s == nil {
			s = &firedSeries{alert: ar.Name(), labels: a.Labels, at: make([]bool, f.steps)}
			f.byKey[k] = s
		}
		s.at[step] = true
	}
}

// firings returns every run of consecutive steps an alert fired, by start.
func (f *firedSet) firings(from time.Time, step time.Duration) []Firing {
	var out []Firing
	for _, s := range f.byKey {
		for i := 0; i < len(s.at); i++ {
			if !s.at[i] {
				continue
			}
			j := i
			for j+1 < len(s.at) && s.at[j+1] {
				j++
			}
			out = append(out, Firing{Alert: s.alert, Labels: s.labels.Map(), Service: s.labels.Get("service"),
				Start: from.Add(time.Duration(i) * step), End: from.Add(time.Duration(j) * step)})
			i = j
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return labels.FromMap(out[i].Labels).String() < labels.FromMap(out[j].Labels).String()
	})
	return out
}
