package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// placed is a cluster with the wave it belongs to in one release.
type placed struct {
	Cluster
	wave int
}

type plan []placed

func (p plan) status() []ClusterStatus {
	out := make([]ClusterStatus, len(p))
	for i, c := range p {
		out[i] = ClusterStatus{Name: c.Name, Wave: c.wave}
	}
	return out
}

// planWaves resolves a spec's clusters and waves against the fleet: every
// cluster named must exist; by default each cluster is a wave of its own.
func (e *Engine) planWaves(ctx context.Context, s Spec) (plan, error) {
	all, err := e.fleet.Clusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	if len(all) == 0 {
		return nil, invalid("spec.clusters", "there is no cluster to release to; register one with pave cluster add")
	}
	byName := map[string]Cluster{}
	var known []string
	for _, c := range all {
		byName[c.Name] = c
		known = append(known, c.Name)
	}
	lookup := func(path, name string) (Cluster, error) {
		c, ok := byName[name]
		if !ok {
			return Cluster{}, invalid(path, "no cluster named %s; the clusters are %s", name, strings.Join(known, ", "))
		}
		return c, nil
	}
	var p plan
	switch {
	case len(s.Waves) > 0:
		for i, w := range s.Waves {
			for j, name := range w {
				c, err := lookup(fmt.Sprintf("spec.waves[%d][%d]", i, j), name)
				if err != nil {
					return nil, err
				}
				p = append(p, placed{c, i})
			}
		}
	default:
		names := s.Clusters
		if len(names) == 0 {
			names = known
		}
		for i, name := range names {
			c, err := lookup(fmt.Sprintf("spec.clusters[%d]", i), name)
			if err != nil {
				return nil, err
			}
			wave := i
			if s.Lockstep {
				wave = 0
			}
			p = append(p, placed{c, wave})
		}
	}
	return p, nil
}

// seams returns the seams of the release's clusters by name. A release
// recorded before clusters existed runs in every cluster, as one wave.
func (e *Engine) seams(ctx context.Context, r *Release) (map[string]Cluster, error) {
	all, err := e.fleet.Clusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	if len(r.Status.Clusters) == 0 {
		for _, c := range all {
			r.Status.Clusters = append(r.Status.Clusters, ClusterStatus{Name: c.Name})
		}
	}
	out := make(map[string]Cluster, len(all))
	for _, c := range all {
		out[c.Name] = c
	}
	for _, cs := range r.Status.Clusters {
		if _, ok := out[cs.Name]; !ok {
			return nil, fmt.Errorf("cluster %s of release %s is no longer registered; register it again or abort the release", cs.Name, r.Metadata.Name)
		}
	}
	return out, nil
}

// clusterWeights are the weights a cluster of the given wave must carry:
// the clusters of finished waves serve the canary, the current wave the
// step's weights, the later waves the stable version; once the release
// ended, every cluster carries its final weights.
func (r *Release) clusterWeights(wave int) traffic.Weights {
	s := r.Status
	if s.Phase.Terminal() || s.Phase == Pending || wave == s.Wave {
		return s.Weights
	}
	if wave < s.Wave {
		return traffic.Weights{r.Canary(): traffic.Total}
	}
	return traffic.Weights{s.Stable: traffic.Total}
}

// trouble records a cluster's error, or its recovery, and reports whether
// the record changed in a way worth storing.
func (c *ClusterStatus) trouble(err error, now time.Time) bool {
	if err == nil {
		if c.Error == "" {
			return false
		}
		c.Error, c.ErrorSince = "", time.Time{}
		return true
	}
	first := c.Error == ""
	c.Error = err.Error()
	if first {
		c.ErrorSince = now
	}
	return first
}

// appliedWeights is the weights event's record: per cluster.
func (s Status) appliedWeights() map[string]string {
	out := make(map[string]string, len(s.Clusters))
	for _, c := range s.Clusters {
		out[c.Name] = c.Weights.String()
	}
	return out
}

// inWindow tells which versions of a cluster the current window counts:
// canary and stable of the current wave's clusters, during its steps and
// its gate alike (gate.go): the judges only ever compare the two versions
// within the same clusters.
func (s Status) inWindow(wave int) (canary, stable bool) {
	return wave == s.Wave, wave == s.Wave
}

// measure sums the window's counters over the clusters it covers.
func (e *Engine) measure(ctx context.Context, r *Release, seams map[string]Cluster) (stats.Snapshot, error) {
	out := stats.Snapshot{r.Canary(): {}, r.Status.Stable: {}}
	var errs []error
	now := e.clock.Now().UTC()
	for i := range r.Status.Clusters {
		cs := &r.Status.Clusters[i]
		canary, stable := r.Status.inWindow(cs.Wave)
		if !canary && !stable {
			continue
		}
		snap, err := seams[cs.Name].Metrics.Snapshot(ctx, r.Spec.Service)
		if err != nil {
			err = fmt.Errorf("cluster %s: read metrics of %s: %w", cs.Name, r.Spec.Service, err)
			errs = append(errs, err)
			cs.trouble(err, now)
			continue
		}
		if canary {
			out[r.Canary()] = out[r.Canary()].Add(snap[r.Canary()])
		}
		if stable {
			out[r.Status.Stable] = out[r.Status.Stable].Add(snap[r.Status.Stable])
		}
	}
	return out, errors.Join(errs...)
}

// holdOrRollBack keeps a release where it is while one of its clusters is
// in trouble, and rolls it back everywhere once the trouble outlasts
// spec.maxHold: traffic must not stay on a version nobody can judge.
func (e *Engine) holdOrRollBack(ctx context.Context, r *Release, ver *int64, cause error) error {
	now := e.clock.Now().UTC()
	for _, cs := range r.Status.Clusters {
		if cs.Error != "" && now.Sub(cs.ErrorSince) > r.Spec.MaxHold.D() {
			msg := fmt.Sprintf("rolled back: cluster %s has been failing for %s: %s", cs.Name, now.Sub(cs.ErrorSince).Round(time.Second), cs.Error)
			return errors.Join(cause, e.end(ctx, r, ver, RolledBack, msg, nil))
		}
	}
	return cause
}

// waveLabel prefixes step messages when there are several waves.
func (r *Release) waveLabel() string {
	n := r.Status.Waves()
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf("wave %d of %d (%s): ", r.Status.Wave+1, n, strings.Join(r.Status.WaveClusters(r.Status.Wave), ", "))
}
