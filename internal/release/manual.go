package release

import (
	"context"
	"errors"
	"fmt"

	"github.com/pave-platform/pave/internal/state"
)

// UnchangedError answers an action that finds the release where it would
// have put it (pausing a paused release): not a failure, nothing done.
type UnchangedError struct{ Message string }

func (e *UnchangedError) Error() string { return e.Message }

// ErrBusy refuses a change to a service while one of its releases runs.
var ErrBusy = errors.New("a release of the service is running")

// Unfinished returns the release of service that has not ended, if any.
func (e *Engine) Unfinished(ctx context.Context, service string) (Release, bool, error) {
	all, err := e.list(ctx)
	if err != nil {
		return Release{}, false, err
	}
	for _, r := range all {
		if r.Spec.Service == service && !r.Status.Phase.Terminal() {
			return r, true, nil
		}
	}
	return Release{}, false, nil
}

// HandOver pauses the unfinished release of service so that a person can
// set its traffic: until it is resumed the engine applies none of its own
// weights (and judges nothing). It returns the paused release, or found =
// false when the service has no unfinished release. A release still
// waiting for readiness has no traffic to hand over: ErrBusy.
func (e *Engine) HandOver(ctx context.Context, service, actor string) (r Release, found bool, err error) {
	defer e.locks.lock(service)()
	cur, ok, err := e.Unfinished(ctx, service)
	if err != nil || !ok {
		return Release{}, false, err
	}
	ver, err := state.GetJSON(ctx, e.store, StateKind, cur.Metadata.Name, &r)
	if err != nil {
		return Release{}, true, err
	}
	if r.Status.Phase == Pending {
		return r, true, fmt.Errorf("%w: release %s of %s@%s is waiting for its version to be ready and will then set the traffic; abort it first (pave release abort %s)",
			ErrBusy, r.Metadata.Name, service, r.Spec.Version, r.Metadata.Name)
	}
	who := ""
	if actor != "" {
		who = " by " + actor
	}
	r.Status.Phase, r.Status.ManualTraffic = Paused, true
	r.Status.Message = "paused" + who + " for manual traffic (pave traffic set --force); pave release resume " + r.Metadata.Name + " puts its weights " + r.Status.Weights.String() + " back"
	if err := e.commit(ctx, &r, &ver, "paused", map[string]string{"by": actor, "message": r.Status.Message}); err != nil {
		return Release{}, true, err
	}
	e.log.Info("release paused for manual traffic", "release", r.Metadata.Name, "by", actor)
	return r, true, nil
}

// Undo goes back to the version before service's current one: an
// unfinished release is aborted (traffic back on its stable version at
// once); otherwise a new release of the previously promoted version starts,
// with that release's spec. It returns the release acted on and whether it
// was created.
func (e *Engine) Undo(ctx context.Context, service, actor string) (Release, bool, error) {
	if cur, ok, err := e.Unfinished(ctx, service); err != nil {
		return Release{}, false, err
	} else if ok {
		r, err := e.Act(ctx, cur.Metadata.Name, Abort, actor)
		return r, false, err
	}
	all, err := e.List(ctx) // newest first
	if err != nil {
		return Release{}, false, err
	}
	var promoted []Release
	for _, r := range all {
		if r.Spec.Service == service && r.Status.Phase == Promoted {
			promoted = append(promoted, r)
		}
	}
	if len(promoted) == 0 {
		return Release{}, false, fmt.Errorf("%w: %s has no promoted release to undo (see pave release list --service %s)", ErrNotFound, service, service)
	}
	current := promoted[0]
	var back Release
	switch {
	case len(promoted) > 1:
		back = New(service, promoted[1].Spec.Version)
		back.Spec = promoted[1].Spec
		back.Spec.Supersede = false
	case current.Status.Stable != "":
		// The version before the first release ran without one (pave run):
		// its artifact is what the runtime still knows of it.
		spec, ok, err := e.runningSpec(ctx, service, current.Status.Stable)
		if err != nil {
			return Release{}, false, err
		}
		if !ok && current.Status.StableArtifact != nil {
			spec, ok = *current.Status.StableArtifact, true
		}
		if !ok {
			return Release{}, false, fmt.Errorf("%w: %s@%s, the version before %s, came from no release and no longer runs; release it again with its source (pave release %s --version %s --source DIR)",
				ErrNotFound, service, current.Status.Stable, current.Spec.Version, service, current.Status.Stable)
		}
		back = New(service, current.Status.Stable)
		back.Spec.Source, back.Spec.Binary, back.Spec.Image, back.Spec.Replicas = spec.Source, spec.Binary, spec.Image, spec.Replicas
		back.Spec.Clusters, back.Spec.Waves, back.Spec.Lockstep = current.Spec.Clusters, current.Spec.Waves, current.Spec.Lockstep
	default:
		return Release{}, false, fmt.Errorf("%w: %s has only its first release (%s); there is no earlier version to go back to", ErrNotFound, service, current.Metadata.Name)
	}
	back.Metadata = Metadata{Labels: map[string]string{"pave.dev/undo-of": current.Metadata.Name}}
	back.Status = Status{}
	r, err := e.Create(ctx, back)
	return r, err == nil, err
}

// runningSpec finds the artifact of a version some cluster still runs.
func (e *Engine) runningSpec(ctx context.Context, service, version string) (RunningVersion, bool, error) {
	clusters, err := e.fleet.Clusters(ctx)
	if err != nil {
		return RunningVersion{}, false, fmt.Errorf("list clusters: %w", err)
	}
	for _, c := range clusters {
		vl, ok := c.Target.(VersionLister)
		if !ok {
			continue
		}
		vs, err := vl.Versions(ctx, service)
		if err != nil {
			return RunningVersion{}, false, err
		}
		for _, v := range vs {
			if v.Version == version {
				return v, true, nil
			}
		}
	}
	return RunningVersion{}, false, nil
}
