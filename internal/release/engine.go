package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// StateKind is the state-store kind under which releases are kept; their
// timeline is the event log of the same kind and key.
const StateKind = "release"

// Errors of the engine's operations.
var (
	ErrNotFound = errors.New("release not found")
	// ErrState refuses an action the release's phase does not allow.
	ErrState = errors.New("not allowed in this phase")
)

// Engine drives releases. One engine owns a state store's releases; its
// methods are safe for concurrent use.
type Engine struct {
	store state.Store
	fleet Fleet
	clock Clock
	log   *slog.Logger
	// decisionEvery bounds how often an unchanged decision is re-stored
	// for the live view.
	decisionEvery time.Duration
	// alerts, when set, lets spec.analysis.abortOnAlerts end a release
	// (alerts.go).
	alerts Alerts
	// traffic, when set, tells a service's recent traffic for the
	// forecast of a new release (forecast.go).
	traffic TrafficSource

	// locks serialises the changes to one service's releases; releases
	// of different services are reconciled in parallel (controller.go).
	locks     serviceLocks
	serviceOf sync.Map // release name → its service, for the lock
	// lister tells which releases still need work (lister.go).
	lister lister
	// cache keeps decoded releases for the reconciles (releasecache.go).
	cache releaseCache
	// workers is how many releases Run reconciles at once.
	workers int
	// timings, when set, hears of each reconcile Run makes.
	timings func(Timing)
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock replaces the wall clock (simulations, tests).
func WithClock(c Clock) Option { return func(e *Engine) { e.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// NewEngine returns an engine over the seams of one cluster, named
// DefaultCluster.
func NewEngine(store state.Store, router Router, target Target, metrics MetricSource, opts ...Option) *Engine {
	return NewFleetEngine(store, Clusters{{Name: DefaultCluster, Router: router, Target: target, Metrics: metrics}}, opts...)
}

// NewFleetEngine returns an engine that releases to the clusters of a
// fleet, in waves.
func NewFleetEngine(store state.Store, fleet Fleet, opts ...Option) *Engine {
	e := &Engine{store: store, fleet: fleet, clock: wallClock{},
		log: slog.New(slog.DiscardHandler), decisionEvery: 5 * time.Second, workers: DefaultWorkers}
	e.lister.store = store
	for _, o := range opts {
		o(e)
	}
	return e
}

// Create validates and records a new release; the reconcile loop starts
// it. A release of the same service that is still running makes this one
// fail, unless spec.supersede is set: then the older one is aborted first.
// Create accepts a service Pave does not know yet; CreateWith can refuse it.
func (e *Engine) Create(ctx context.Context, r Release) (Release, error) {
	return e.CreateWith(ctx, r, CreateOptions{NewService: true})
}

// CreateWith is Create with options: the API refuses an unknown service
// unless asked to create it, so a typo never starts a new service.
func (e *Engine) CreateWith(ctx context.Context, r Release, opts CreateOptions) (Release, error) {
	r.Default()
	if err := r.Validate(); err != nil {
		return Release{}, err
	}
	if err := checkPaths(r.Spec); err != nil {
		return Release{}, err
	}
	if err := withServiceShadowRules(&r.Spec); err != nil {
		return Release{}, err
	}
	defer e.locks.lock(r.Spec.Service)()
	// The names taken and the service's running release come from the
	// lister's index (a key listing, and a read of the releases changed
	// since), so a create does not read and decode every release.
	ix, err := e.lister.index(ctx)
	if err != nil {
		return Release{}, err
	}
	if !opts.NewService {
		if err := e.known(ctx, r.Spec.Service, ix.services); err != nil {
			return Release{}, err
		}
	}
	var running *Release
	taken := ix.taken
	if name := ix.running[r.Spec.Service]; name != "" {
		var cur Release
		if _, err := state.GetJSON(ctx, e.store, StateKind, name, &cur); err != nil && !errors.Is(err, state.ErrNotFound) {
			return Release{}, err
		} else if err == nil && !cur.Status.Phase.Terminal() {
			running = &cur
		}
	}
	if r.Metadata.Name != "" && taken[r.Metadata.Name] {
		return Release{}, invalid("metadata.name", "a release named %s exists already; choose another name or leave it empty", r.Metadata.Name)
	}
	if running != nil && running.Spec.Version == r.Spec.Version {
		return Release{}, invalid("spec.version", "release %s is already releasing %s@%s", running.Metadata.Name, r.Spec.Service, r.Spec.Version)
	}
	if running != nil && !r.Spec.Supersede {
		return Release{}, invalid("spec.service", "release %s of %s@%s is %s; wait for it, abort it (pave release abort %s) or supersede it (--supersede, spec.supersede: true)",
			running.Metadata.Name, running.Spec.Service, running.Spec.Version, running.Status.Phase.Words(), running.Metadata.Name)
	}
	clusters, err := e.planWaves(ctx, r.Spec)
	if err != nil {
		return Release{}, err
	}
	if err := checkArtifacts(ctx, clusters, r.Spec); err != nil {
		return Release{}, err
	}
	stable := ""
	if running != nil {
		stable = running.Status.Stable
	} else {
		// A service without weights (the router answers not-found) has
		// no stable version: this is its first release. The stable
		// version is the heaviest in the first cluster that has one.
		for _, c := range clusters {
			w, err := c.Router.Weights(ctx, r.Spec.Service)
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return Release{}, fmt.Errorf("cluster %s: read the current weights of %s: %w", c.Name, r.Spec.Service, err)
			}
			if stable = heaviest(w); stable != "" {
				break
			}
		}
	}
	// A service that runs without weights (started with pave run) has its
	// stable version all the same: the one running, whose size the new
	// version takes unless the spec sets replicas.
	live, err := runningVersions(ctx, clusters, r.Spec.Service, r.Spec.Version)
	if err != nil {
		return Release{}, err
	}
	if stable == "" {
		stable = pickStable(live)
	}
	if r.Spec.Replicas == 0 {
		r.Spec.Replicas = replicasOf(live, stable)
	}
	if stable == r.Spec.Version {
		return Release{}, invalid("spec.version", "%s is already the stable version of %s", r.Spec.Version, r.Spec.Service)
	}
	if r.Metadata.Name == "" {
		base := r.Spec.Service + "-" + r.Spec.Version
		r.Metadata.Name = base
		for i := 2; taken[r.Metadata.Name]; i++ {
			r.Metadata.Name = fmt.Sprintf("%s-%d", base, i)
		}
	}
	now := e.clock.Now().UTC()
	r.Metadata.CreationTimestamp = now
	r.Status = Status{Phase: Pending, Step: -1, Stable: stable, Message: "waiting for " + r.Spec.Version + " to be ready", Clusters: clusters.status(),
		StableArtifact: artifactOf(live, stable)}

	if running != nil {
		ver, err := state.GetJSON(ctx, e.store, StateKind, running.Metadata.Name, running)
		if err != nil {
			return Release{}, err
		}
		e.retire(running, Aborted, "superseded by "+r.Metadata.Name)
		if err := e.commit(ctx, running, &ver, "aborted", map[string]string{"reason": running.Status.Message}); err != nil {
			return Release{}, err
		}
		if err := e.applyWeights(ctx, running, &ver); err != nil {
			return Release{}, fmt.Errorf("move traffic off the superseded release %s: %w", running.Metadata.Name, err)
		}
	}
	e.forecastAtCreate(ctx, &r) // status.forecast: will it decide on its own? (forecast.go)
	var ver int64
	if err := e.commit(ctx, &r, &ver, "created", r.Spec); err != nil {
		return Release{}, err
	}
	// Its first reconcile need not read it to find its lock (lockRelease).
	e.serviceOf.Store(r.Metadata.Name, r.Spec.Service)
	e.log.Info("release created", "release", r.Metadata.Name, "service", r.Spec.Service, "version", r.Spec.Version, "stable", stable)
	return r, nil
}

// Get returns one release.
func (e *Engine) Get(ctx context.Context, name string) (Release, error) {
	var r Release
	if _, err := state.GetJSON(ctx, e.store, StateKind, name, &r); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return Release{}, fmt.Errorf("%w: %s (see pave release list)", ErrNotFound, name)
		}
		return Release{}, err
	}
	return r, nil
}

// List returns every release, newest first.
func (e *Engine) List(ctx context.Context) ([]Release, error) {
	all, err := e.list(ctx)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all, nil
}

// list returns every release, oldest first.
func (e *Engine) list(ctx context.Context) ([]Release, error) {
	all, err := state.ListJSON[Release](ctx, e.store, StateKind)
	if err != nil {
		return nil, err
	}
	sortByCreation(all)
	return all, nil
}

// Event is one entry of a release's timeline.
type Event struct {
	Time time.Time       `json:"time"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// History returns a release's timeline, oldest first.
func (e *Engine) History(ctx context.Context, name string) ([]Event, error) {
	if _, err := e.Get(ctx, name); err != nil {
		return nil, err
	}
	var out []Event
	var after int64
	for {
		evs, err := e.store.Events(ctx, StateKind, name, after, 500)
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			out = append(out, Event{Time: ev.Time, Type: ev.Type, Data: ev.Data})
			after = ev.Seq
		}
		if len(evs) < 500 {
			return out, nil
		}
	}
}

// Action is a person's command on a running release.
type Action string

// The actions.
const (
	Pause   Action = "pause"
	Resume  Action = "resume"
	Promote Action = "promote"
	Abort   Action = "abort"
)

// Act applies a person's action. Promote skips the remaining steps and
// analysis; abort moves all traffic back to stable at once.
func (e *Engine) Act(ctx context.Context, name string, a Action, actor string) (Release, error) {
	var r Release
	ver, unlock, err := e.lockRelease(ctx, name, &r)
	if err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return Release{}, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return Release{}, err
	}
	defer unlock()
	refuse := func(allowed string) (Release, error) {
		return Release{}, fmt.Errorf("%w: cannot %s release %s: it is %s; %s", ErrState, a, name, r.Status.Phase.Words(), allowed)
	}
	who := ""
	if actor != "" {
		who = " by " + actor
	}
	switch a {
	case Pause:
		if r.Status.Phase == Paused {
			return r, &UnchangedError{Message: fmt.Sprintf("release %s is paused already; nothing changed (pave release resume %s continues it)", name, name)}
		}
		if r.Status.Phase != Progressing {
			return refuse("only a progressing release can be paused")
		}
		r.Status.Phase, r.Status.Message = Paused, "paused"+who
	case Resume:
		if r.Status.Phase == Progressing {
			return r, &UnchangedError{Message: fmt.Sprintf("release %s is progressing already; nothing changed", name)}
		}
		if r.Status.Phase != Paused {
			return refuse("only a paused release can be resumed")
		}
		r.Status.Phase, r.Status.Message = Progressing, "resumed"+who
		r.Status.HoldSince = time.Time{}
		if r.Status.ManualTraffic {
			// The release's weights go back on the routers.
			r.Status.ManualTraffic, r.Status.WeightsApplied = false, false
			r.Status.Message += ", its weights " + r.Status.Weights.String() + " applied again"
		}
	case Promote:
		if r.Status.Phase != Progressing && r.Status.Phase != Paused {
			return refuse("only a progressing or paused release can be promoted")
		}
		e.promote(&r, "promoted"+who+", skipping the remaining steps")
	case Abort:
		if r.Status.Phase.Terminal() {
			return refuse("it has ended already")
		}
		e.retire(&r, Aborted, "aborted"+who)
	default:
		return Release{}, fmt.Errorf("unknown action %q: use pause, resume, promote or abort", a)
	}
	if err := e.commit(ctx, &r, &ver, string(a), map[string]string{"by": actor, "message": r.Status.Message}); err != nil {
		return Release{}, err
	}
	if err := e.applyWeights(ctx, &r, &ver); err != nil {
		return r, fmt.Errorf("recorded, but the router refused the weights (the reconcile loop retries): %w", err)
	}
	return r, nil
}

// Wait follows a release until it ends and its final weights are applied
// (Settled), calling progress (if set) whenever
// its status changes, and returns the final release.
func (e *Engine) Wait(ctx context.Context, name string, poll time.Duration, progress func(Release)) (Release, error) {
	t := time.NewTicker(poll)
	defer t.Stop()
	var last []byte
	for {
		r, err := e.Get(ctx, name)
		if err != nil {
			return Release{}, err
		}
		if progress != nil {
			if b, _ := json.Marshal(r.Status); string(b) != string(last) {
				last = b
				progress(r)
			}
		}
		if r.Settled() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
	}
}

// lockRelease takes the lock of release name's service (see
// serviceLocks) and reads the release into r under it, with its version.
// The caller calls unlock. A release's service never changes, so it is
// remembered from the first read; the read under the lock confirms it.
func (e *Engine) lockRelease(ctx context.Context, name string, r *Release) (ver int64, unlock func(), err error) {
	service, known := e.serviceOf.Load(name)
	if !known {
		if _, err := state.GetJSON(ctx, e.store, StateKind, name, r); err != nil {
			return 0, nil, err
		}
		service = r.Spec.Service
	}
	for {
		unlock = e.locks.lock(service.(string))
		*r = Release{}
		ver, err = e.cache.read(ctx, e.store, name, r)
		if err != nil {
			unlock()
			return 0, nil, err
		}
		if r.Spec.Service == service {
			e.serviceOf.Store(name, service)
			return ver, unlock, nil
		}
		unlock() // a name reused for another service: its lock instead
		service = r.Spec.Service
	}
}

// commit stores the release (ifVersion *ver, updated on success) and
// appends a timeline event; with *ver == 0 the release must be new.
func (e *Engine) commit(ctx context.Context, r *Release, ver *int64, evType string, evData any) error {
	// Until the write is answered the entry would be stale; a write that
	// fails leaves the next read to decode what is stored.
	e.cache.drop(r.Metadata.Name)
	if pa, ok := e.store.(state.PutAppender); ok && evType != "" {
		// One transaction: a crash never keeps a decision without its
		// entry in the timeline.
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode release %s: %w", r.Metadata.Name, err)
		}
		var data []byte
		if evData != nil {
			data, _ = json.Marshal(evData)
		}
		o, _, err := pa.PutAppend(ctx, StateKind, r.Metadata.Name, b, *ver, state.Event{Time: e.clock.Now().UTC(), Kind: StateKind, Key: r.Metadata.Name, Type: evType, Data: data})
		if err != nil {
			return fmt.Errorf("store release %s: %w", r.Metadata.Name, err)
		}
		*ver = o.Version
		e.lister.note(r, o.Version)
		e.cache.stored(r, o.Version)
		return nil
	}
	v, err := state.PutJSON(ctx, e.store, StateKind, r.Metadata.Name, r, *ver)
	if err != nil {
		return fmt.Errorf("store release %s: %w", r.Metadata.Name, err)
	}
	*ver = v
	e.lister.note(r, v)
	e.cache.stored(r, v)
	if evType == "" {
		return nil
	}
	var data []byte
	if evData != nil {
		data, _ = json.Marshal(evData)
	}
	if _, err := e.store.Append(ctx, state.Event{Time: e.clock.Now().UTC(), Kind: StateKind, Key: r.Metadata.Name, Type: evType, Data: data}); err != nil {
		return fmt.Errorf("record event %s of release %s: %w", evType, r.Metadata.Name, err)
	}
	return nil
}

// applyWeights makes every cluster's router carry the weights the release
// wants there, then confirms. A cluster that fails is recorded with its
// error (and since when) and the others are still applied; the caller gets
// the joined errors and the reconcile loop retries.
func (e *Engine) applyWeights(ctx context.Context, r *Release, ver *int64) error {
	if len(r.Status.Weights) == 0 {
		return nil
	}
	seams, err := e.seams(ctx, r)
	if err != nil {
		return err
	}
	now := e.clock.Now().UTC()
	var errs []error
	changed := false
	for i := range r.Status.Clusters {
		cs := &r.Status.Clusters[i]
		want := r.clusterWeights(cs.Wave)
		router := seams[cs.Name].Router
		cur, err := router.Weights(ctx, r.Spec.Service)
		if err != nil || !sameWeights(cur, want) {
			err = router.SetWeights(ctx, r.Spec.Service, want)
		}
		if err != nil {
			err = fmt.Errorf("cluster %s: set weights of %s to %s: %w", cs.Name, r.Spec.Service, want, err)
			errs = append(errs, err)
			changed = cs.trouble(err, now) || changed
			continue
		}
		changed = cs.trouble(nil, now) || changed
		if !sameWeights(cs.Weights, want) {
			cs.Weights, changed = want, true
		}
	}
	if len(errs) > 0 {
		if changed {
			if err := e.commit(ctx, r, ver, "", nil); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if r.Status.WeightsApplied && !changed {
		return nil
	}
	r.Status.WeightsApplied = true
	return e.commit(ctx, r, ver, "weights", r.Status.appliedWeights())
}

// setWeights records the intent: the weights the router must get.
func (r *Release) setWeights(w traffic.Weights) {
	r.Status.Weights = w
	r.Status.WeightsApplied = false
}

// promote sends all traffic to the canary and ends the release.
func (e *Engine) promote(r *Release, msg string) {
	now := e.clock.Now().UTC()
	r.setWeights(traffic.Weights{r.Canary(): traffic.Total})
	r.Status.Phase, r.Status.Message, r.Status.Finished = Promoted, msg, now
	r.Status.Step = len(r.Spec.Steps) - 1
	r.Status.ScaleDownAt = now.Add(r.Spec.ScaleDownDelay.D())
	r.Status.HoldSince = time.Time{}
}

// retire ends a release in phase p with all traffic back on stable: weight
// first, the canary is scaled down after the delay.
func (e *Engine) retire(r *Release, p Phase, msg string) {
	now := e.clock.Now().UTC()
	if r.Status.Stable != "" && r.Status.Step >= 0 {
		r.setWeights(traffic.Weights{r.Status.Stable: traffic.Total})
	} else if r.Status.Stable == "" && r.Status.Step >= 0 {
		// A first release has nothing to go back to; the canary keeps
		// what it has until a person acts.
		r.Status.Weights = nil
	}
	r.Status.Phase, r.Status.Message, r.Status.Finished = p, msg, now
	r.Status.ScaleDownAt = now.Add(r.Spec.ScaleDownDelay.D())
	r.Status.HoldSince = time.Time{}
}

func heaviest(w traffic.Weights) string {
	best, bestW := "", int64(0)
	for _, v := range w.Versions() {
		if w[v] > bestW {
			best, bestW = v, w[v]
		}
	}
	return best
}

func sameWeights(a, b traffic.Weights) bool {
	for k, v := range a {
		if v != b[k] {
			return false
		}
	}
	for k, v := range b {
		if v != a[k] {
			return false
		}
	}
	return true
}
