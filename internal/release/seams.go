package release

import (
	"context"
	"time"

	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// Router moves a service's traffic between versions; traffic.Router's
// providers (the embedded gateway, Istio, Gateway API) satisfy it.
type Router interface {
	SetWeights(ctx context.Context, service string, w traffic.Weights) error
	Weights(ctx context.Context, service string) (traffic.Weights, error)
}

// Deployment is one version of a service the target must run.
type Deployment struct {
	Service  string
	Version  string
	Replicas int
	Source   string
	Binary   string
	Image    string
	// Env is added to each instance's environment (per-version settings).
	Env map[string]string
}

// Target runs versions of services: the local process runtime or a
// Kubernetes cluster.
type Target interface {
	// Deploy makes the version run with the given replicas; calling it
	// again with the same deployment changes nothing.
	Deploy(ctx context.Context, d Deployment) error
	// Remove stops a version; removing a version that is gone is no error.
	Remove(ctx context.Context, service, version string) error
	// Status reports whether all desired replicas are ready.
	Status(ctx context.Context, service, version string) (ready bool, readyReplicas, desired int, err error)
}

// MetricSource gives a service's cumulative per-version statistics; a
// window is the difference of two snapshots.
type MetricSource interface {
	Snapshot(ctx context.Context, service string) (stats.Snapshot, error)
}

// Clock tells the time; the benchmark and the tests drive the engine with a
// simulated one.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// MetricsFunc adapts a function to MetricSource, e.g. the embedded
// gateway's Snapshot:
//
//	release.MetricsFunc(func(_ context.Context, s string) (stats.Snapshot, error) { return gw.Snapshot(s), nil })
type MetricsFunc func(ctx context.Context, service string) (stats.Snapshot, error)

// Snapshot calls f.
func (f MetricsFunc) Snapshot(ctx context.Context, service string) (stats.Snapshot, error) {
	return f(ctx, service)
}

// Cluster is one cluster's seams: where a version runs, how its traffic is
// split and how it is measured there.
type Cluster struct {
	Name    string
	Router  Router
	Target  Target
	Metrics MetricSource
	// Pairs reads the mirrored pairs of a shadow step (nil: the cluster
	// records none; see shadow.go).
	Pairs PairSource
}

// Fleet lists the clusters releases run in, in the default wave order.
// A cluster that cannot be reached is still listed: its seams return the
// errors, so one bad cluster never hides the others.
type Fleet interface {
	Clusters(ctx context.Context) ([]Cluster, error)
}

// Clusters is a fixed Fleet.
type Clusters []Cluster

// Clusters returns c.
func (c Clusters) Clusters(context.Context) ([]Cluster, error) { return c, nil }

// DefaultCluster names the one cluster of an engine built with NewEngine.
const DefaultCluster = "local"
