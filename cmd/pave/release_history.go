package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/release"
)

// historyText is one event of a release's timeline as a sentence, the way
// Flagger's events read ("Advance orders canary weight 25").
func historyText(e release.Event) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(e.Data, &m)
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	num := func(k string) float64 {
		var f float64
		_ = json.Unmarshal(m[k], &f)
		return f
	}
	decision := func(k string) string {
		var d *analysis.Decision
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &d) == nil && d != nil {
			return fmt.Sprintf("%s — %s", d.Verdict, d.Reason)
		}
		return ""
	}
	with := func(s, more string) string {
		if more == "" {
			return s
		}
		return s + ": " + more
	}
	switch e.Type {
	case "created":
		var s release.Spec
		_ = json.Unmarshal(e.Data, &s)
		steps := make([]string, len(s.Steps))
		for i, p := range s.Steps {
			steps[i] = p.String()
		}
		return fmt.Sprintf("Created %s %s, steps %s, %d replica(s)", s.Service, s.Version, strings.Join(steps, " "), max(s.Replicas, 1))
	case "step":
		step, weight := int(num("step")), num("weight")
		if step == 0 {
			msg := fmt.Sprintf("Start canary at step 1, weight %s%%", trimFloat(weight))
			if h := str("headerRoute"); h != "" {
				msg += "; testers reach it with " + h
			}
			return msg
		}
		return with(fmt.Sprintf("Advance to step %d, weight %s%%", step+1, trimFloat(weight)), decision("decision"))
	case "weights":
		var byCluster map[string]string
		_ = json.Unmarshal(e.Data, &byCluster)
		if len(byCluster) == 1 {
			for _, w := range byCluster {
				return "Weights applied: " + orNone(w)
			}
		}
		names := make([]string, 0, len(byCluster))
		for c := range byCluster {
			names = append(names, c)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, c := range names {
			parts[i] = fmt.Sprintf("%s %s", c, orNone(byCluster[c]))
		}
		return "Weights applied: " + strings.Join(parts, "; ")
	case "verdict":
		var d analysis.Decision
		_ = json.Unmarshal(e.Data, &d)
		return fmt.Sprintf("Verdict %s — %s", d.Verdict, d.Reason)
	case "pause", "resume", "promote", "abort":
		msg := str("message")
		if msg == "" {
			msg = e.Type
		}
		return capitalise(msg)
	case "paused":
		return capitalise(str("reason"))
	case "promoted", "rolled_back", "failed", "aborted":
		phase := release.Phase(e.Type)
		return "Release " + phase.Words() + outcomeMessage(release.Status{Phase: phase, Message: str("reason")})
	case "wave":
		var clusters []string
		_ = json.Unmarshal(m["clusters"], &clusters)
		return fmt.Sprintf("Wave %d starts: %s", int(num("wave")), strings.Join(clusters, ", "))
	case "gate":
		return with(fmt.Sprintf("Gate after wave %d", int(num("wave"))), decision("decision"))
	case "counters-reset":
		return "The counters were reset (metrics source restarted); the step's window starts again"
	case "scaled-down":
		if v := str("version"); v != "" {
			return "Scaled down " + v
		}
		return "Nothing to scale down"
	}
	return genericEventText(m)
}

// genericEventText writes key=value for the scalar fields of an event this
// client does not know.
func genericEventText(m map[string]json.RawMessage) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		var v any
		if json.Unmarshal(m[k], &v) != nil {
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, " ")
}

func trimFloat(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", f), "0"), ".")
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
