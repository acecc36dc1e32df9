// Package fleet is Pave's view of several clusters run active-active: the
// registry of clusters (embedded local ones and Kubernetes ones), their
// share of each service's traffic at the edge, gradual drains for
// cluster-level upgrades, and automatic failover when a cluster's health
// fails, with hysteresis so it comes back only after it stayed healthy.
//
// Everything the controller decides from is stored (drains with their
// pace and start, health with its start), so a restarted control plane
// resumes the same drain at the same point and never flaps a cluster
// back in because it forgot a failure.
package fleet

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Kinds of cluster.
const (
	KindLocal      = "local"      // embedded: a runtime and a gateway in `pave up`
	KindKubernetes = "kubernetes" // a Kubernetes cluster reached by kubeconfig
)

// Cluster is one registered cluster.
type Cluster struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Datacenter string `json:"datacenter,omitempty"`
	// Kubernetes only: the context of the kubeconfig Pave keeps a copy of
	// (in the data directory, mode 0600, never shown by the API), the
	// namespace, the traffic router and the Prometheus of the cluster.
	Context    string `json:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Router     string `json:"router,omitempty"`
	Prometheus string `json:"prometheus,omitempty"`
	// LocalReferencesAllowed is the digest ("sha256:…") of the kubeconfig
	// an admin registered with --allow-exec: only that exact file may keep
	// exec plugins and local file references when it is loaded again.
	LocalReferencesAllowed string `json:"localReferencesAllowed,omitempty"`
	// Weight is the cluster's share at the edge relative to the others
	// when all are serving (default 1).
	Weight int64 `json:"weight"`
	// Order places the cluster in the default wave order of releases.
	Order  int       `json:"order"`
	Drain  Drain     `json:"drain"`
	Health Health    `json:"health"`
	Added  time.Time `json:"added"`
}

// Drain is a gradual move of traffic away from a cluster (Draining) or
// back to it. The factor applied to the cluster's weight moves from From,
// at Changed, by Pace per second toward 0 (draining) or 1.
type Drain struct {
	Draining bool      `json:"draining"`
	From     float64   `json:"from"`
	Changed  time.Time `json:"changed,omitzero"`
	// Pace is the fraction of the cluster's weight moved per second.
	Pace float64 `json:"pace,omitempty"`
}

// Factor is the drain factor at t: 1 serves fully, 0 is drained.
func (d Drain) Factor(t time.Time) float64 {
	if d.Changed.IsZero() {
		return 1
	}
	moved := d.Pace * t.Sub(d.Changed).Seconds()
	if d.Draining {
		return max(0, d.From-moved)
	}
	return min(1, d.From+moved)
}

// Health states.
const (
	Healthy = "healthy"
	Failed  = "failed"
)

// Health is a cluster's health as the failover controller judged it.
type Health struct {
	State  string    `json:"state"`
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// ErrInvalid marks refused input; ErrNotFound an unknown cluster.
var (
	ErrInvalid  = errors.New("invalid cluster")
	ErrNotFound = errors.New("cluster not found")
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidName checks a cluster name: it becomes part of object names, file
// names and label values.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: cluster name %q: use 1-40 lower-case letters, digits and '-', starting and ending with a letter or digit", ErrInvalid, name)
	}
	return nil
}

// Validate checks a cluster record's own fields.
func (c Cluster) Validate() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	switch c.Kind {
	case KindLocal, KindKubernetes:
	default:
		return fmt.Errorf("%w: cluster %s: kind %q: want %s or %s", ErrInvalid, c.Name, c.Kind, KindLocal, KindKubernetes)
	}
	if c.Weight < 0 || c.Weight > 1000 {
		return fmt.Errorf("%w: cluster %s: weight %d: want 0 to 1000", ErrInvalid, c.Name, c.Weight)
	}
	if c.Kind == KindKubernetes {
		switch c.Router {
		case "istio", "gatewayapi":
		default:
			return fmt.Errorf("%w: cluster %s: router %q: want istio or gatewayapi", ErrInvalid, c.Name, c.Router)
		}
	}
	return nil
}

// DefaultPace is the drain pace when none is given: 10% of the cluster's
// weight per minute.
const DefaultPace = "10%/min"

// ParsePace reads "10%/min", "50%/s", "100%/h" as a fraction per second.
func ParsePace(s string) (float64, error) {
	pct, unit, ok := strings.Cut(strings.TrimSpace(s), "%/")
	if !ok {
		return 0, fmt.Errorf("%w: pace %q: write PERCENT%%/UNIT, e.g. 10%%/min, 1%%/s, 50%%/h", ErrInvalid, s)
	}
	p, err := strconv.ParseFloat(pct, 64)
	if err != nil || p <= 0 || p > 100 {
		return 0, fmt.Errorf("%w: pace %q: the percent must be a number above 0 and at most 100", ErrInvalid, s)
	}
	per := map[string]float64{"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}[unit]
	if per == 0 {
		return 0, fmt.Errorf("%w: pace %q: unit %q: use s, min or h", ErrInvalid, s, unit)
	}
	return p / 100 / per, nil
}
