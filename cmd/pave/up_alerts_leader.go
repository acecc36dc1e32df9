package main

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/release"
)

// leaderAlerts runs the alert engine on the leader only (issue 21): one
// replica evaluates the rules and notifies, so two replicas do not page
// twice. An alert.Engine runs once, so each term of leadership builds a
// new one over this replica's DATA_DIR/alerting, handed the rule sources
// and the release lookup the last one had. Between terms (on a standby)
// no engine runs; the API routes are forwarded to the leader
// (forwardToLeader), and what reaches this replica anyway answers empty.
type leaderAlerts struct {
	build func(reg prometheus.Registerer) (*alert.Engine, error)
	reg   prometheus.Registerer

	mu       sync.Mutex
	cur      *alert.Engine     // running in this replica's term
	next     *alert.Engine     // built, not run yet: the first term's, built at start
	nextReg  *termRegisterer   // next's metrics
	sources  map[string][]byte // every rule source set, for the next term's engine
	releases alert.Releases
}

// newLeaderAlerts builds the first engine at once, so a bad alert-config
// stops pave up at start on every replica, not at its first term.
func newLeaderAlerts(reg prometheus.Registerer, build func(prometheus.Registerer) (*alert.Engine, error)) (*leaderAlerts, error) {
	a := &leaderAlerts{build: build, reg: reg, sources: map[string][]byte{}}
	a.nextReg = &termRegisterer{reg: reg}
	var err error
	if a.next, err = build(a.nextReg); err != nil {
		return nil, err
	}
	return a, nil
}

// run is one term: the engine evaluates and notifies until the term (or
// pave up) ends. Run through leader.Gate.
func (a *leaderAlerts) run(ctx context.Context) error {
	a.mu.Lock()
	eng, reg := a.next, a.nextReg
	a.next, a.nextReg = nil, nil
	if eng == nil {
		reg = &termRegisterer{reg: a.reg}
		var err error
		if eng, err = a.build(reg); err != nil {
			a.mu.Unlock()
			reg.unregister()
			return err
		}
		for name, content := range a.sources {
			_ = eng.SetRuleSource(name, content) // accepted by the last engine
		}
	}
	eng.SetReleases(a.releases)
	a.cur = eng
	a.mu.Unlock()

	err := eng.Run(ctx)

	a.mu.Lock()
	a.cur = nil
	a.mu.Unlock()
	reg.unregister()
	return err
}

func (a *leaderAlerts) engine() *alert.Engine {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil {
		return a.cur
	}
	return a.next
}

// SetRuleSource sets a rule source on the engine (running or next), and
// keeps it for the engines of later terms.
func (a *leaderAlerts) SetRuleSource(name string, content []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	eng := a.cur
	if eng == nil {
		eng = a.next
	}
	if eng != nil {
		if err := eng.SetRuleSource(name, content); err != nil {
			return err
		}
	}
	if len(content) == 0 {
		delete(a.sources, name)
	} else {
		a.sources[name] = content
	}
	return nil
}

// SetReleases names the releases alerts fire during, in every term.
func (a *leaderAlerts) SetReleases(r alert.Releases) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releases = r
	if a.cur != nil {
		a.cur.SetReleases(r)
	}
}

var errNotLeading = errors.New("the alert engine runs on the leader; this replica is a standby (ask the leader: pave status)")

// Firing is the release engine's alert seam; the release engine runs on
// the leader too.
func (a *leaderAlerts) Firing(ctx context.Context, service string) ([]release.FiringAlert, error) {
	a.mu.Lock()
	eng := a.cur
	a.mu.Unlock()
	if eng == nil {
		return nil, errNotLeading
	}
	return alert.ReleaseSeam{Engine: eng}.Firing(ctx, service)
}

// The server.Alerting methods: the running engine's, or empty answers.

func (a *leaderAlerts) API() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		eng := a.cur
		a.mu.Unlock()
		if eng == nil {
			unavailable(w, errNotLeading.Error())
			return
		}
		eng.API().ServeHTTP(w, r)
	})
}

func (a *leaderAlerts) running() *alert.Engine {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

func (a *leaderAlerts) Alerts(ctx context.Context) []alert.Alert {
	if e := a.running(); e != nil {
		return e.Alerts(ctx)
	}
	return nil
}

func (a *leaderAlerts) RuleFileErrors() []alert.RuleFileError {
	if e := a.engine(); e != nil {
		return e.RuleFileErrors()
	}
	return nil
}

func (a *leaderAlerts) ExternalAlertmanagers() []string {
	if e := a.engine(); e != nil {
		return e.ExternalAlertmanagers()
	}
	return nil
}

func (a *leaderAlerts) Silences(ctx context.Context) ([]alert.Silence, error) {
	if e := a.running(); e != nil {
		return e.Silences(ctx)
	}
	return nil, errNotLeading
}

func (a *leaderAlerts) AddSilence(ctx context.Context, s alert.NewSilence) (alert.Silence, error) {
	if e := a.running(); e != nil {
		return e.AddSilence(ctx, s)
	}
	return alert.Silence{}, errNotLeading
}

func (a *leaderAlerts) ExpireSilence(ctx context.Context, id string) error {
	if e := a.running(); e != nil {
		return e.ExpireSilence(ctx, id)
	}
	return errNotLeading
}

func (a *leaderAlerts) Deliveries() []alert.Delivery {
	if e := a.running(); e != nil {
		return e.Deliveries()
	}
	return nil
}

// termRegisterer registers one term's engine's metrics and unregisters
// them when the term ends, so the next term's engine can register its own.
type termRegisterer struct {
	reg prometheus.Registerer
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (t *termRegisterer) Register(c prometheus.Collector) error {
	if err := t.reg.Register(c); err != nil {
		return err
	}
	t.mu.Lock()
	t.cs = append(t.cs, c)
	t.mu.Unlock()
	return nil
}

func (t *termRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

func (t *termRegisterer) Unregister(c prometheus.Collector) bool { return t.reg.Unregister(c) }

func (t *termRegisterer) unregister() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.cs {
		t.reg.Unregister(c)
	}
	t.cs = nil
}

// ruleSink takes generated rule files (up_slo.go): the alert engine of
// whichever term runs.
type ruleSink interface {
	SetRuleSource(name string, content []byte) error
}
