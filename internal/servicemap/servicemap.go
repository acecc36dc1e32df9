// Package servicemap draws who calls whom from the access logs kit writes
// (every request carries its caller): nodes are services, edges carry the
// request rate, error ratio and p99 latency per cluster. A version in a
// canary is its own node while its release runs, so a person sees which
// callers reach it.
package servicemap

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Node is a service, or a canary version of one.
type Node struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	// Version is set for a canary node.
	Version  string `json:"version,omitempty"`
	Canary   bool   `json:"canary,omitempty"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// External marks a caller that is not a service in the logs (a
	// browser, the gateway, a job): requests without a caller come from
	// "(external)".
	External bool `json:"external,omitempty"`
}

// Edge is caller → service traffic in one cluster.
type Edge struct {
	From       string  `json:"from"`
	To         string  `json:"to"`
	Cluster    string  `json:"cluster,omitempty"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	RatePerSec float64 `json:"ratePerSec"`
	ErrorRatio float64 `json:"errorRatio"`
	P99Ms      float64 `json:"p99Ms"`
	// FailingTrace is the trace of a recent failed request, for the
	// request viewer; FailingTime is when it was seen.
	FailingTrace string    `json:"failingTrace,omitempty"`
	FailingTime  time.Time `json:"failingTime,omitzero"`
}

// Graph is the service map over a window.
type Graph struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Nodes []Node    `json:"nodes"`
	Edges []Edge    `json:"edges"`
	// Truncated says the window held more access logs than were read.
	Truncated bool     `json:"truncated,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

// Canary is a version in a running release.
type Canary struct{ Service, Version string }

// External is the node of requests with no caller.
const External = "(external)"

// MaxLogs bounds the access logs read for one map.
const MaxLogs = 200000

// Build reads the access logs of [from, to) and draws the map.
func Build(ctx context.Context, store telemetry.Store, from, to time.Time, canaries []Canary) (Graph, error) {
	isCanary := map[Canary]bool{}
	for _, c := range canaries {
		isCanary[c] = true
	}
	type key struct{ from, to, cluster string }
	type acc struct {
		e    Edge
		durs []float64
	}
	edges := map[key]*acc{}
	nodes := map[string]*Node{}
	node := func(id string) *Node {
		n := nodes[id]
		if n == nil {
			n = &Node{ID: id, Service: id}
			nodes[id] = n
		}
		return n
	}
	g := Graph{From: from, To: to}
	q := telemetry.Query{From: from, To: to, Where: []telemetry.Match{{Key: "kind", Value: "access"}}, Limit: telemetry.MaxLimit}
	read := 0
	for {
		res, err := store.Query(ctx, q)
		if err != nil {
			return Graph{}, fmt.Errorf("read access logs: %w", err)
		}
		g.Warnings = append(g.Warnings, res.Warnings...)
		for i := range res.Logs {
			l := &res.Logs[i]
			if l.Service == "" {
				continue
			}
			to := l.Service
			if l.Version != "" && isCanary[Canary{l.Service, l.Version}] {
				to = l.Service + "@" + l.Version
				n := node(to)
				n.Service, n.Version, n.Canary = l.Service, l.Version, true
			}
			caller := l.Caller
			if caller == "" {
				caller = External
				node(caller).External = true
			} else {
				node(caller)
			}
			failed := l.Status >= 500
			n := node(to)
			n.Requests++
			k := key{caller, to, l.Cluster}
			a := edges[k]
			if a == nil {
				a = &acc{e: Edge{From: caller, To: to, Cluster: l.Cluster}}
				edges[k] = a
			}
			a.e.Requests++
			a.durs = append(a.durs, l.DurationMS)
			if failed {
				n.Errors++
				a.e.Errors++
				// Logs come newest first: the first failure kept is the latest.
				if a.e.FailingTrace == "" && l.TraceID != "" {
					a.e.FailingTrace, a.e.FailingTime = l.TraceID, l.Time
				}
			}
		}
		read += len(res.Logs)
		if res.Next == "" {
			break
		}
		if read >= MaxLogs {
			g.Truncated = true
			break
		}
		q.Cursor = res.Next
	}
	secs := to.Sub(from).Seconds()
	g.Nodes = make([]Node, 0, len(nodes))
	for _, n := range nodes {
		g.Nodes = append(g.Nodes, *n)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	g.Edges = make([]Edge, 0, len(edges))
	for _, a := range edges {
		e := a.e
		if secs > 0 {
			e.RatePerSec = float64(e.Requests) / secs
		}
		e.ErrorRatio = float64(e.Errors) / float64(e.Requests)
		e.P99Ms = quantile(a.durs, 0.99)
		g.Edges = append(g.Edges, e)
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.Cluster < b.Cluster
	})
	return g, nil
}

// quantile is the nearest-rank quantile (what a reader checks by hand).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	i := int(float64(len(v))*q+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}
