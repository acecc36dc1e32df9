package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
)

// The release engine's optional seams, answered by a runtime target that
// can: which versions of a service run (a first release takes the one
// running as its stable version), whether an artifact can be run (refused
// at creation, not after the ready timeout) and why a version is not
// ready (the release's failure).
var (
	_ release.VersionLister   = releaseTarget{}
	_ release.ServiceLister   = releaseTarget{}
	_ release.ArtifactChecker = releaseTarget{}
	_ release.Diagnoser       = releaseTarget{}
)

func (r releaseTarget) Versions(ctx context.Context, service string) ([]release.RunningVersion, error) {
	all, err := r.t.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []release.RunningVersion
	for _, st := range all {
		if st.Service == service {
			out = append(out, release.RunningVersion{Version: st.Version, Replicas: st.Replicas, Ready: st.Ready, Source: st.Source, Binary: st.Binary})
		}
	}
	return out, nil
}

func (r releaseTarget) Services(ctx context.Context) ([]string, error) {
	all, err := r.t.List(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, st := range all {
		if !seen[st.Service] {
			seen[st.Service] = true
			out = append(out, st.Service)
		}
	}
	return out, nil
}

// CheckArtifact names the spec field at fault (spec.source...) when the
// runtime can check artifacts; a remote cluster's images are not checked.
func (r releaseTarget) CheckArtifact(_ context.Context, d release.Deployment) error {
	c, ok := r.t.(interface {
		CheckArtifact(runtime.Deployment) error
	})
	if !ok {
		return nil
	}
	err := c.CheckArtifact(runtime.Deployment{Service: d.Service, Version: d.Version, Source: d.Source, Binary: d.Binary, Image: d.Image})
	var fe *runtime.FieldError
	if errors.As(err, &fe) {
		return &release.FieldError{Path: "spec." + fe.Field, Err: fmt.Errorf("%w: %s", release.ErrUnusable, trimInvalid(fe.Err))}
	}
	return err
}

// trimInvalid drops the runtime's "invalid deployment: " prefix.
func trimInvalid(err error) string {
	s := err.Error()
	p := runtime.ErrInvalid.Error() + ": "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func (r releaseTarget) Diagnose(ctx context.Context, service, version string) (*release.Failure, error) {
	d, ok := r.t.(interface {
		Diagnose(context.Context, string, string) (*runtime.Diagnosis, error)
	})
	if !ok {
		return nil, nil
	}
	got, err := d.Diagnose(ctx, service, version)
	if err != nil || got == nil {
		return nil, err
	}
	return &release.Failure{Reason: got.Instance + ": " + got.Reason, ExitCode: got.ExitCode, Restarts: got.Restarts, Stderr: got.Stderr,
		LogsCommand: release.LogsCommand(service, version, 10*time.Minute)}, nil
}
