package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pave-platform/pave/internal/spelling"
	"github.com/pave-platform/pave/internal/state"
)

// CreateOptions are the choices of a caller creating a release.
type CreateOptions struct {
	// NewService allows a release of a service Pave does not know: no
	// release, no weights and no running version of it anywhere.
	NewService bool
}

// Errors of release creation, besides ErrInvalid.
var (
	// ErrUnknownService refuses a release of a service Pave does not know
	// unless it is created on purpose (HTTP 404).
	ErrUnknownService = errors.New("unknown service")
	// ErrUnusable refuses a well-formed spec naming what cannot be run: a
	// relative path, a directory or binary that does not exist, an image
	// where the target runs processes (HTTP 422).
	ErrUnusable = errors.New("cannot be used")
)

func unusable(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf("%w: "+format, append([]any{ErrUnusable}, args...)...)}
}

// checkPaths refuses relative paths: the control plane cannot know what
// they were relative to (the CLI resolves a spec file's paths against the
// file's directory before sending it).
func checkPaths(s Spec) error {
	for _, f := range []struct{ path, value string }{{"spec.source", s.Source}, {"spec.binary", s.Binary}} {
		if f.value != "" && !filepath.IsAbs(f.value) {
			return unusable(f.path, "%q is a relative path; give an absolute path (pave release -f resolves a spec's paths against the spec file's directory)", f.value)
		}
	}
	return nil
}

// RunningVersion is a version of a service a target runs.
type RunningVersion struct {
	Version  string `json:"version"`
	Replicas int    `json:"replicas"` // desired
	Ready    int    `json:"ready"`
	Source   string `json:"source,omitempty"`
	Binary   string `json:"binary,omitempty"`
	Image    string `json:"image,omitempty"`
}

// artifactOf returns the running version named version, if listed.
func artifactOf(vs []RunningVersion, version string) *RunningVersion {
	for _, v := range vs {
		if v.Version == version {
			return &v
		}
	}
	return nil
}

// VersionLister is a Target that reports the versions of a service it
// runs, started by a release or not (pave run).
type VersionLister interface {
	Versions(ctx context.Context, service string) ([]RunningVersion, error)
}

// ArtifactChecker is a Target that can tell at once whether it can run a
// deployment's artifact: the local runtime checks that a source directory
// or binary exists. Errors name the spec field (spec.source...).
type ArtifactChecker interface {
	CheckArtifact(ctx context.Context, d Deployment) error
}

// checkArtifacts asks every cluster's target that can whether the
// artifact is usable, so a missing directory is refused now rather than
// after the ready timeout.
func checkArtifacts(ctx context.Context, clusters plan, s Spec) error {
	d := Deployment{Service: s.Service, Version: s.Version, Source: s.Source, Binary: s.Binary, Image: s.Image}
	for _, c := range clusters {
		ac, ok := c.Target.(ArtifactChecker)
		if !ok {
			continue
		}
		if err := ac.CheckArtifact(ctx, d); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) && len(clusters) > 1 {
				fe.Err = fmt.Errorf("cluster %s: %w", c.Name, fe.Err)
			}
			return err
		}
	}
	return nil
}

// runningVersions lists the versions of service (but the one released)
// in the first cluster that runs any. A cluster that cannot say is
// passed over: the stable version then comes from the others or from the
// weights, as before the runtime was asked.
func runningVersions(ctx context.Context, clusters plan, service, except string) ([]RunningVersion, error) {
	for _, c := range clusters {
		vl, ok := c.Target.(VersionLister)
		if !ok {
			continue
		}
		vs, err := vl.Versions(ctx, service)
		if err != nil {
			continue
		}
		var out []RunningVersion
		for _, v := range vs {
			if v.Version != except && v.Replicas > 0 {
				out = append(out, v)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, nil
}

// pickStable chooses the stable version among running ones: the one with
// the most ready replicas, then the most desired, then the last by name.
func pickStable(vs []RunningVersion) string {
	if len(vs) == 0 {
		return ""
	}
	best := vs[0]
	for _, v := range vs[1:] {
		if v.Ready > best.Ready || (v.Ready == best.Ready && (v.Replicas > best.Replicas || (v.Replicas == best.Replicas && v.Version > best.Version))) {
			best = v
		}
	}
	return best.Version
}

// replicasOf is the size of version among vs, or DefaultReplicas.
func replicasOf(vs []RunningVersion, version string) int {
	for _, v := range vs {
		if v.Version == version && v.Replicas > 0 {
			return v.Replicas
		}
	}
	return DefaultReplicas
}

// known refuses a service without any trace in Pave: no release, no
// weights in any cluster, no running version. Caller holds the service's lock.
func (e *Engine) known(ctx context.Context, service string, withReleases map[string]bool) error {
	if withReleases[service] {
		return nil
	}
	names := make(map[string]bool, len(withReleases))
	maps.Copy(names, withReleases)
	clusters, err := e.fleet.Clusters(ctx)
	if err != nil {
		return fmt.Errorf("list clusters: %w", err)
	}
	for _, c := range clusters {
		w, err := c.Router.Weights(ctx, service)
		if err == nil && len(w) > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("cluster %s: read the weights of %s: %w", c.Name, service, err)
		}
		if vl, ok := c.Target.(VersionLister); ok {
			vs, err := vl.Versions(ctx, service)
			if err == nil && len(vs) > 0 {
				return nil
			}
		}
		if sl, ok := c.Target.(ServiceLister); ok {
			if svcs, err := sl.Services(ctx); err == nil {
				for _, s := range svcs {
					names[s] = true
				}
			}
		}
	}
	hint := ""
	if len(names) > 0 {
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		hint = "; known services: " + strings.Join(list, ", ")
		if m := closest(service, list); m != "" {
			hint = fmt.Sprintf("; did you mean %s?%s", m, hint)
		}
	}
	return &FieldError{Path: "spec.service", Err: fmt.Errorf("%w: Pave knows no service %s (no release, no traffic, no running version)%s. "+
		"To start a new service, create it on purpose: pave release %s --create (API: POST /api/v1/releases?create=true), or pave run it first",
		ErrUnknownService, service, hint, service)}
}

// ServiceLister is a Target that names every service it runs.
type ServiceLister interface {
	Services(ctx context.Context) ([]string, error)
}

// closest returns the name within edit distance 2 of s, if one is.
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := spelling.Distance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}
