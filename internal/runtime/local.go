package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/datadir"
	"github.com/pave-platform/pave/internal/state"
)

// State store kinds of the local runtime.
const (
	kindDeployment = "runtime.deployment" // key SERVICE/VERSION: the desired state
	kindInstance   = "runtime.instance"   // key SERVICE/VERSION/SLOT/PID: a started process, for adoption
)

// LocalOptions configure the local runtime.
type LocalOptions struct {
	Store   state.Store
	DataDir string // artifacts and instance directories go under DataDir/runtime
	// Cluster and Datacenter are given to instances as PAVE_CLUSTER and
	// PAVE_DATACENTER.
	Cluster    string
	Datacenter string
	// OTLPEndpoint is the control plane's OTLP/HTTP intake, e.g.
	// http://127.0.0.1:4318, given as OTEL_EXPORTER_OTLP_ENDPOINT.
	OTLPEndpoint string
	Endpoints    EndpointSink // may be nil
	Output       OutputSink   // may be nil
	Routes       RouteSink    // route lists of services' .pave.yaml; may be nil
	Log          *slog.Logger

	// StopGrace is how long a stopping instance has between SIGTERM and
	// SIGKILL (default 10s).
	StopGrace time.Duration
	// BackoffInitial and BackoffMax bound the delay before restarting a
	// crashed instance; it doubles per crash (defaults 500ms and 30s) and
	// resets once an instance stayed up for BackoffReset (default 30s).
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	BackoffReset   time.Duration
	// ProbeInterval is the readiness polling period of a ready instance
	// (default 1s); a starting one is polled five times as often.
	ProbeInterval time.Duration
	// StopOnShutdown stops every instance when Run returns. By default
	// instances keep running so the next control plane adopts them and
	// their traffic is not interrupted by its restart.
	StopOnShutdown bool
	// GoCommand builds sources (default "go" from PATH).
	GoCommand string
	// Resync is the period of the reconcile loop besides the wake-ups of
	// Deploy and Remove (default 2s).
	Resync time.Duration
}

// Local runs service versions as supervised processes on this machine.
type Local struct {
	opts  LocalOptions
	log   *slog.Logger
	probe *http.Client

	buildMu sync.Mutex
	digests digestCache // guarded by buildMu
	kick    chan struct{}

	pubMu     sync.Mutex // orders endpoint and route announcements
	announced map[string][]string
	routes    map[string][]string // by service: the templates announced

	mu   sync.Mutex
	deps map[string]*deployment // by SERVICE/VERSION
}

var _ Target = (*Local)(nil)

// storedDeployment is the desired state of a version, as stored.
type storedDeployment struct {
	Deployment
	Artifact string    `json:"artifact"`
	Hash     string    `json:"hash"`
	Deployed time.Time `json:"deployed"`
	// Routes are the route templates of the .pave.yaml beside the source
	// or binary when it was deployed.
	Routes []string `json:"routes,omitempty"`
}

// sameRun reports whether instances of a can keep running for b.
func (a storedDeployment) sameRun(b storedDeployment) bool {
	return a.Artifact == b.Artifact && a.readinessPath() == b.readinessPath() && maps.Equal(a.Env, b.Env)
}

// instanceRecord is written when a process starts and deleted when it is
// stopped on purpose; a control plane starting up adopts what it finds.
type instanceRecord struct {
	Service    string    `json:"service"`
	Version    string    `json:"version"`
	Slot       int       `json:"slot"`
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"`
	Port       int       `json:"port"`
	Artifact   string    `json:"artifact"`
	Restarts   int       `json:"restarts"`
	Started    time.Time `json:"started"`
}

func (r instanceRecord) key() string {
	return fmt.Sprintf("%s/%s/%d/%d", r.Service, r.Version, r.Slot, r.PID)
}

// deployment is the in-memory side of a version: its supervisors.
type deployment struct {
	spec     storedDeployment
	removed  bool        // no longer desired; kept until draining is empty
	slots    []*instance // index = slot
	draining []*instance // told to stop, not gone yet
}

// NewLocal returns the local runtime; call Run to start supervising.
func NewLocal(o LocalOptions) (*Local, error) {
	if o.Store == nil {
		return nil, errors.New("local runtime: no state store")
	}
	if strings.TrimSpace(o.DataDir) == "" {
		return nil, errors.New("local runtime: no data directory")
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	o.DataDir = abs
	if o.Log == nil {
		o.Log = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.StopGrace, 10*time.Second)
	def(&o.BackoffInitial, 500*time.Millisecond)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.BackoffReset, 30*time.Second)
	def(&o.ProbeInterval, time.Second)
	def(&o.Resync, 2*time.Second)
	if o.GoCommand == "" {
		o.GoCommand = "go"
	}
	return &Local{
		opts: o,
		log:  o.Log,
		probe: &http.Client{
			Timeout: 2 * time.Second,
			// A probe must not reuse a connection to an instance that
			// died, nor keep idle connections to many instances.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		kick:      make(chan struct{}, 1),
		announced: map[string][]string{},
		routes:    map[string][]string{},
		deps:      map[string]*deployment{},
	}, nil
}

func (l *Local) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Deploy validates d, builds or copies its artifact, records it as desired
// and wakes the reconcile loop. On any error nothing is recorded and
// nothing running changes.
func (l *Local) Deploy(ctx context.Context, d Deployment) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Image != "" {
		return invalid("image", "the local runtime runs processes, not images: give source (a directory to build) or binary")
	}
	d.Env = maps.Clone(d.Env)
	if len(d.Env) == 0 {
		d.Env = nil
	}
	d.ReadinessPath = d.readinessPath()
	routes, err := l.deployRoutes(d)
	if err != nil {
		return err
	}
	artifact, hash, err := l.artifact(ctx, d)
	if err != nil {
		return err
	}
	want := storedDeployment{Deployment: d, Artifact: artifact, Hash: hash, Routes: routes}
	k := key(d.Service, d.Version)
	var cur storedDeployment
	ver, err := state.GetJSON(ctx, l.opts.Store, kindDeployment, k, &cur)
	switch {
	case errors.Is(err, state.ErrNotFound):
		ver = 0
	case err != nil:
		return err
	default:
		want.Deployed = cur.Deployed
		if equalJSON(cur, want) {
			l.wake()
			return nil
		}
	}
	want.Deployed = time.Now().UTC()
	if _, err := state.PutJSON(ctx, l.opts.Store, kindDeployment, k, want, ver); err != nil {
		if errors.Is(err, state.ErrConflict) {
			return fmt.Errorf("%s %s was changed concurrently; try again: %w", d.Service, d.Version, err)
		}
		return err
	}
	l.event(ctx, k, "deployed", map[string]any{"replicas": d.Replicas, "hash": hash, "source": d.Source, "binary": d.Binary})
	l.log.Info("deployment recorded", "service", d.Service, "version", d.Version, "replicas", d.Replicas, "artifact", artifact)
	l.wake()
	return nil
}

func equalJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// Remove records that a version is no longer wanted; the reconcile loop
// stops its instances (SIGTERM, then SIGKILL after the grace period).
func (l *Local) Remove(ctx context.Context, service, version string) error {
	if err := errors.Join(ValidName("service", service), ValidName("version", version)); err != nil {
		return err
	}
	k := key(service, version)
	if err := l.opts.Store.Delete(ctx, kindDeployment, k, state.Any); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("%s version %s: %w", service, version, ErrNotFound)
		}
		return err
	}
	l.event(ctx, k, "removed", nil)
	l.log.Info("deployment removed", "service", service, "version", version)
	l.wake()
	return nil
}

func (l *Local) event(ctx context.Context, k, typ string, data any) {
	var raw []byte
	if data != nil {
		raw, _ = json.Marshal(data)
	}
	if _, err := l.opts.Store.Append(ctx, state.Event{Kind: kindDeployment, Key: k, Type: typ, Data: raw}); err != nil {
		l.log.Warn("runtime event not recorded", "key", k, "type", typ, "err", err)
	}
}

// Status reports one version. A removed version whose instances are still
// stopping is reported with 0 desired replicas until they are gone.
func (l *Local) Status(ctx context.Context, service, version string) (Status, error) {
	if err := errors.Join(ValidName("service", service), ValidName("version", version)); err != nil {
		return Status{}, err
	}
	k := key(service, version)
	var sd storedDeployment
	_, err := state.GetJSON(ctx, l.opts.Store, kindDeployment, k, &sd)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return Status{}, err
	}
	found := err == nil
	spec, live, known := l.observe(k)
	if !found {
		if !known || len(live) == 0 {
			return Status{}, fmt.Errorf("%s version %s: %w", service, version, ErrNotFound)
		}
		sd = spec
		sd.Replicas = 0
	}
	return l.status(sd, live), nil
}

// observe returns the in-memory side of a version: its spec and the
// instances that have not finished.
func (l *Local) observe(k string) (storedDeployment, []*instance, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dep := l.deps[k]
	if dep == nil {
		return storedDeployment{}, nil, false
	}
	return dep.spec, dep.live(), true
}

// List reports every version that is deployed or still stopping.
func (l *Local) List(ctx context.Context) ([]Status, error) {
	stored, err := state.ListJSON[storedDeployment](ctx, l.opts.Store, kindDeployment)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := []Status{}
	for _, sd := range stored {
		k := key(sd.Service, sd.Version)
		seen[k] = true
		_, live, _ := l.observe(k)
		out = append(out, l.status(sd, live))
	}
	l.mu.Lock()
	keys := slices.Collect(maps.Keys(l.deps))
	l.mu.Unlock()
	for _, k := range keys {
		if seen[k] {
			continue
		}
		if spec, live, ok := l.observe(k); ok && len(live) > 0 {
			spec.Replicas = 0
			out = append(out, l.status(spec, live))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

func (l *Local) status(sd storedDeployment, live []*instance) Status {
	st := Status{
		Service: sd.Service, Version: sd.Version, Replicas: sd.Replicas,
		Artifact: sd.Artifact, Source: sd.Source, Binary: sd.Binary, Deployed: sd.Deployed,
		Instances: []Instance{}, Endpoints: []string{},
	}
	for _, in := range live {
		i := in.snapshot()
		if i.State == StateReady {
			st.Ready++
		}
		st.Instances = append(st.Instances, i)
	}
	sort.Slice(st.Instances, func(i, j int) bool { return st.Instances[i].Slot < st.Instances[j].Slot })
	l.pubMu.Lock()
	st.Endpoints = append(st.Endpoints, l.announced[key(sd.Service, sd.Version)]...)
	l.pubMu.Unlock()
	return st
}

// Run supervises instances until ctx ends: it first adopts the processes
// an earlier control plane left running, then reconciles whenever Deploy
// or Remove is called and every Resync period.
func (l *Local) Run(ctx context.Context) error {
	// Only the owner of the data directory adopts: two supervisors of one
	// process would restart, stop and announce it against each other.
	if err := datadir.CheckOwner(l.opts.DataDir); err != nil {
		return fmt.Errorf("local runtime: %w", err)
	}
	records, err := state.ListJSON[instanceRecord](ctx, l.opts.Store, kindInstance)
	if err != nil {
		return fmt.Errorf("local runtime: read instances: %w", err)
	}
	adopt := map[string][]instanceRecord{}
	for _, r := range records {
		adopt[key(r.Service, r.Version)] = append(adopt[key(r.Service, r.Version)], r)
	}
	t := time.NewTicker(l.opts.Resync)
	defer t.Stop()
	for {
		// The records are adopted by the first reconcile that succeeds;
		// dropping them earlier would start duplicates of running instances.
		if err := l.reconcile(ctx, adopt); err != nil {
			if ctx.Err() == nil {
				l.log.Error("reconcile failed; retrying", "err", err)
			}
		} else {
			adopt = nil
		}
		select {
		case <-ctx.Done():
			l.shutdown()
			return nil
		case <-l.kick:
		case <-t.C:
		}
	}
}

// reconcile makes the supervisors match the stored desired state. adopt
// holds the instance records of an earlier control plane (first pass only).
func (l *Local) reconcile(ctx context.Context, adopt map[string][]instanceRecord) error {
	stored, err := state.ListJSON[storedDeployment](ctx, l.opts.Store, kindDeployment)
	if err != nil {
		return err
	}
	want := map[string]storedDeployment{}
	for _, sd := range stored {
		want[key(sd.Service, sd.Version)] = sd
	}
	var touched []string
	l.mu.Lock()
	for k, sd := range want {
		dep := l.deps[k]
		if dep == nil {
			dep = &deployment{spec: sd}
			l.deps[k] = dep
		}
		if dep.removed || !dep.spec.sameRun(sd) {
			dep.drainAll()
		}
		dep.removed = false
		dep.spec = sd
		recs := adopt[k]
		for len(dep.slots) < sd.Replicas {
			slot := len(dep.slots)
			in := l.newInstance(sd, slot)
			rec, ok := pickRecord(recs, slot, sd.Artifact)
			if ok {
				recs = slices.DeleteFunc(recs, func(r instanceRecord) bool { return r.key() == rec.key() })
			}
			dep.slots = append(dep.slots, in)
			go in.run(ctx, rec, ok)
		}
		for len(dep.slots) > sd.Replicas {
			last := dep.slots[len(dep.slots)-1]
			dep.slots = dep.slots[:len(dep.slots)-1]
			last.stop()
			dep.draining = append(dep.draining, last)
		}
		delete(adopt, k)
		// Records not adopted (an old artifact, a slot above replicas, a
		// duplicate) are processes to stop, if they still run.
		l.stopRecords(ctx, dep, recs)
		touched = append(touched, k)
	}
	for k, recs := range adopt {
		if len(recs) == 0 {
			continue
		}
		r := recs[0]
		dep := l.deps[k]
		if dep == nil {
			dep = &deployment{spec: storedDeployment{Deployment: Deployment{Service: r.Service, Version: r.Version}, Artifact: r.Artifact}}
			l.deps[k] = dep
		}
		dep.removed = true
		l.stopRecords(ctx, dep, recs)
	}
	for k, dep := range l.deps {
		if _, ok := want[k]; !ok && !dep.removed {
			dep.drainAll()
			dep.removed = true
		}
		dep.draining = slices.DeleteFunc(dep.draining, (*instance).finished)
		if dep.removed && !dep.hasLive() {
			delete(l.deps, k)
		}
		touched = append(touched, k)
	}
	l.mu.Unlock()
	for _, k := range touched {
		l.publish(k)
	}
	l.publishRoutes(stored)
	return nil
}

// stopRecords stops the processes of records not adopted; caller holds mu.
func (l *Local) stopRecords(ctx context.Context, dep *deployment, recs []instanceRecord) {
	for _, r := range recs {
		sd := dep.spec
		sd.Artifact = r.Artifact
		in := l.newInstance(sd, r.Slot)
		in.stop()
		dep.draining = append(dep.draining, in)
		go in.run(ctx, r, true)
	}
}

// pickRecord chooses the newest record of slot that ran artifact.
func pickRecord(recs []instanceRecord, slot int, artifact string) (instanceRecord, bool) {
	var best instanceRecord
	ok := false
	for _, r := range recs {
		if r.Slot == slot && r.Artifact == artifact && (!ok || r.Started.After(best.Started)) {
			best, ok = r, true
		}
	}
	return best, ok
}

func (d *deployment) drainAll() {
	for _, in := range d.slots {
		in.stop()
		d.draining = append(d.draining, in)
	}
	d.slots = nil
}

func (d *deployment) live() []*instance {
	out := make([]*instance, 0, len(d.slots)+len(d.draining))
	for _, in := range append(slices.Clip(d.slots), d.draining...) {
		if !in.finished() {
			out = append(out, in)
		}
	}
	return out
}

func (d *deployment) hasLive() bool { return len(d.live()) > 0 }

// publish announces the ready endpoints of a version when they changed.
func (l *Local) publish(k string) {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	eps := []string{}
	l.mu.Lock()
	if dep := l.deps[k]; dep != nil {
		for _, in := range dep.slots {
			if ep, ok := in.endpoint(); ok {
				eps = append(eps, ep)
			}
		}
	}
	l.mu.Unlock()
	sort.Strings(eps)
	prev, had := l.announced[k]
	if had && slices.Equal(prev, eps) {
		return
	}
	if !had && len(eps) == 0 {
		return
	}
	if len(eps) == 0 {
		delete(l.announced, k)
	} else {
		l.announced[k] = eps
	}
	if l.opts.Endpoints != nil {
		service, version, _ := strings.Cut(k, "/")
		l.opts.Endpoints.SetEndpoints(service, version, slices.Clone(eps))
	}
	l.log.Debug("endpoints", "key", k, "endpoints", eps)
}

// shutdown ends supervision. Instances keep running for the next control
// plane to adopt, unless StopOnShutdown.
func (l *Local) shutdown() {
	l.mu.Lock()
	var all []*instance
	for _, dep := range l.deps {
		all = append(all, dep.slots...)
		all = append(all, dep.draining...)
	}
	l.mu.Unlock()
	for _, in := range all {
		if l.opts.StopOnShutdown {
			in.stop()
		} else {
			in.detach()
		}
	}
	for _, in := range all {
		<-in.done
	}
}

func (l *Local) instanceDir(service, version string, slot int) string {
	return filepath.Join(l.opts.DataDir, "runtime", "instances", service, version, strconv.Itoa(slot))
}
