package inventory

import (
	"context"

	"github.com/pave-platform/pave/internal/release"
)

// ReleaseList adapts a list of releases (the engine's List, or the API's
// GET /api/v1/releases) to Releases.
type ReleaseList func(ctx context.Context) ([]release.Release, error)

// LastReleases keeps the newest release of each service.
func (l ReleaseList) LastReleases(ctx context.Context) (map[string]LastRelease, error) {
	all, err := l(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]LastRelease{}
	for _, r := range all {
		created := r.Metadata.CreationTimestamp
		if cur, ok := out[r.Spec.Service]; ok && !created.After(cur.created) {
			continue
		}
		out[r.Spec.Service] = LastRelease{
			Name: r.Metadata.Name, Version: r.Spec.Version, Phase: string(r.Status.Phase),
			Started: r.Status.Started, Finished: r.Status.Finished, created: created,
		}
	}
	return out, nil
}
