package metrics

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
)

// Target is one endpoint to scrape.
type Target struct {
	// Address is host:port, e.g. 127.0.0.1:41234.
	Address string
	// Path is the metrics path (default /metrics).
	Path string
	// Labels are attached to every series of the target (service,
	// version, instance, cluster). "instance" overrides the address.
	Labels map[string]string
}

// targetSets hands target updates to the scrape manager, as Prometheus'
// discovery manager does: the latest full set per job, never queued.
type targetSets struct {
	mu      sync.Mutex
	last    map[string][]Target
	updates chan map[string][]*targetgroup.Group
}

func newTargetSets() *targetSets {
	return &targetSets{last: map[string][]Target{}, updates: make(chan map[string][]*targetgroup.Group, 1)}
}

// SetTargets replaces the targets of job (JobServices, JobGateway or
// JobPave). Unchanged sets are not resent, so a caller may poll.
func (s *Store) SetTargets(job string, ts []Target) {
	s.targets.set(job, ts)
}

func (t *targetSets) set(job string, ts []Target) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b Target) int {
		if a.Address < b.Address {
			return -1
		}
		if a.Address > b.Address {
			return 1
		}
		return 0
	})
	if old, ok := t.last[job]; ok && slices.EqualFunc(old, ts, func(a, b Target) bool {
		return a.Address == b.Address && a.Path == b.Path && maps.Equal(a.Labels, b.Labels)
	}) {
		return
	}
	t.last[job] = ts
	all := map[string][]*targetgroup.Group{}
	for j, list := range t.last {
		g := &targetgroup.Group{Source: "pave/" + j}
		for _, tg := range list {
			ls := model.LabelSet{model.AddressLabel: model.LabelValue(tg.Address)}
			if tg.Path != "" {
				ls[model.MetricsPathLabel] = model.LabelValue(tg.Path)
			}
			for k, v := range tg.Labels {
				ls[model.LabelName(k)] = model.LabelValue(v)
			}
			g.Targets = append(g.Targets, ls)
		}
		all[j] = []*targetgroup.Group{g}
	}
	// Replace a pending update the manager has not read yet.
	select {
	case <-t.updates:
	default:
	}
	t.updates <- all
}
