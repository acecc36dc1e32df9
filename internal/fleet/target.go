package fleet

import (
	"context"
	"errors"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
)

// ReleaseTarget adapts a runtime target (local or Kubernetes) to the
// release engine's seam: removing what is gone is no error, and a version
// is ready when every desired replica is.
func ReleaseTarget(t runtime.Target) release.Target { return releaseTarget{t} }

type releaseTarget struct{ t runtime.Target }

func (r releaseTarget) Deploy(ctx context.Context, d release.Deployment) error {
	return r.t.Deploy(ctx, runtime.Deployment{Service: d.Service, Version: d.Version, Replicas: d.Replicas, Source: d.Source, Binary: d.Binary, Image: d.Image, Env: d.Env})
}

func (r releaseTarget) Remove(ctx context.Context, service, version string) error {
	if err := r.t.Remove(ctx, service, version); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return err
	}
	return nil
}

func (r releaseTarget) Status(ctx context.Context, service, version string) (bool, int, int, error) {
	st, err := r.t.Status(ctx, service, version)
	if err != nil {
		return false, 0, 0, err
	}
	ready := st.Ready == st.Replicas && (len(st.Instances) == st.Replicas || len(st.Instances) == 0)
	return ready, st.Ready, st.Replicas, nil
}
