package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/alert/probe"
	"github.com/pave-platform/pave/internal/alert/slo"
	"github.com/pave-platform/pave/internal/runtime"
)

// serviceRules keeps the alert engine's rules and the synthetic probes in
// step with the services `pave up` runs: the platform's rules once, and for
// each deployed service the SLO and probe rules its .pave.yaml declares
// (beside its source or binary, as the runtime reads its routes). A service
// no longer deployed loses its rules and probes, so its absent() guards do
// not fire for ever.
type serviceRules struct {
	engine   ruleSink
	prober   *probe.Prober
	clusters clusterSet
	api      string // the control plane's URL, for the alerts' links
	log      *slog.Logger

	rules  map[string][]byte // service → the rule file last set
	failed map[string]string // service → the last error logged
}

func startServiceRules(ctx context.Context, eng ruleSink, ms *metricsStore, clusters clusterSet, api string, log *slog.Logger) (*serviceRules, error) {
	if err := eng.SetRuleSource(alert.PlatformSource, slo.PlatformRules()); err != nil {
		return nil, fmt.Errorf("alerting: the platform rules: %w", err)
	}
	p, err := probe.New(ms.store.Registry, log.With("component", "probes"))
	if err != nil {
		return nil, fmt.Errorf("alerting: probes: %w", err)
	}
	return &serviceRules{engine: eng, prober: p, clusters: clusters, api: api, log: log,
		rules: map[string][]byte{}, failed: map[string]string{}}, nil
}

// run follows the runtime until ctx ends, checking every interval.
func (s *serviceRules) run(ctx context.Context, interval time.Duration) error {
	go func() { _ = s.prober.Run(ctx) }()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// sync is one level-triggered pass: the wanted rules and probes are
// computed from what runs now and set where they differ.
func (s *serviceRules) sync(ctx context.Context) {
	dirs := map[string]string{} // service → directory of its newest deployed version
	newest := map[string]time.Time{}
	var gateways []probe.Gateway
	for _, c := range s.clusters {
		if c.isLost() {
			continue
		}
		gateways = append(gateways, probe.Gateway{Cluster: c.name, URL: "http://" + c.ln.Addr().String()})
		sts, err := c.rt.List(ctx)
		if err != nil {
			s.log.Warn("listing services for their alert rules", "cluster", c.name, "err", err)
			return // keep what is set rather than dropping rules on a transient error
		}
		for _, st := range sts {
			if dir := sourceDir(st); dir != "" && !st.Deployed.Before(newest[st.Service]) {
				dirs[st.Service], newest[st.Service] = dir, st.Deployed
			} else if _, ok := dirs[st.Service]; !ok {
				dirs[st.Service] = ""
			}
		}
	}
	for name, dir := range dirs {
		svc := slo.Service{Name: name}
		var content []byte
		var err error
		if dir != "" {
			if svc, err = slo.Read(name, dir); err == nil {
				svc.PaveServer = s.api
				content, err = slo.Rules(svc)
			}
		}
		if err != nil {
			if msg := err.Error(); s.failed[name] != msg {
				s.failed[name] = msg
				s.log.Error("the service's SLOs or probes are refused; its previous rules keep running", "service", name, "err", err)
			}
			continue
		}
		delete(s.failed, name)
		s.set(name, content)
		gws := make([]probe.Gateway, len(gateways))
		for i, g := range gateways {
			g.Host = name + ".localhost" // the gateway routes by Host (docs/gateway.md)
			gws[i] = g
		}
		if err := s.prober.Set(name, probe.Checks(svc, gws)); err != nil {
			s.log.Error("setting the service's probes", "service", name, "err", err)
		}
	}
	for name := range s.rules {
		if _, ok := dirs[name]; !ok {
			s.set(name, nil)
			_ = s.prober.Set(name, nil)
		}
	}
}

// set hands the engine the service's rule file when it changed; nil
// removes it.
func (s *serviceRules) set(service string, content []byte) {
	if old, ok := s.rules[service]; ok && bytes.Equal(old, content) || !ok && content == nil {
		return
	}
	if err := s.engine.SetRuleSource("slo/"+service, content); err != nil {
		s.log.Error("the service's generated rules were refused", "service", service, "err", err)
		return
	}
	if content == nil {
		delete(s.rules, service)
	} else {
		s.rules[service] = content
	}
}

// sourceDir is where the runtime reads a deployment's .pave.yaml.
func sourceDir(st runtime.Status) string {
	switch {
	case st.Source != "":
		return st.Source
	case st.Binary != "":
		return filepath.Dir(st.Binary)
	}
	return ""
}
