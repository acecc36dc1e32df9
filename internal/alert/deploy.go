package alert

import (
	"context"
	"net/url"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"

	"github.com/pave-platform/pave/internal/release"
)

// Deploy awareness (issue 16): an alert of a service that fires while a
// release of that service runs names the release and its version, in the
// notification (annotations release, release_version, release_url) and in
// `pave alerts`. Annotations, not labels: a label would change the alert's
// identity, and Alertmanager would see a new alert (and notify again) when
// the release begins or ends.

// Release is the release an alert fired during.
type Release struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Phase is the release's phase when the alert was last evaluated.
	Phase string `json:"phase"`
}

// Releases finds the release of a service that ran while an alert was
// active: the newest one whose run (creation to end, or now) overlaps
// [activeAt, now]. The release engine of `pave up` provides it.
type Releases interface {
	ReleaseDuring(ctx context.Context, service string, activeAt time.Time) (Release, bool)
}

// SetReleases gives the engine the releases alerts are matched with; nil
// turns deploy awareness off.
func (e *Engine) SetReleases(r Releases) {
	if r == nil {
		e.releases.Store(nil)
		return
	}
	e.releases.Store(&r)
}

// releaseOf returns the release an alert with these labels, active since
// activeAt, fired during.
func (e *Engine) releaseOf(ctx context.Context, ls labels.Labels, activeAt time.Time) (Release, bool) {
	p := e.releases.Load()
	svc := ls.Get("service")
	if p == nil || svc == "" {
		return Release{}, false
	}
	return (*p).ReleaseDuring(ctx, svc, activeAt)
}

// releaseURL links to the release on the releases page.
func (e *Engine) releaseURL(name string) string {
	return e.opts.ExternalURL + "/ui/releases.html?name=" + url.QueryEscape(name)
}

// withReleases returns the alerts with the release annotations added where
// a release of the alert's service runs or ran while it was active. The
// rules manager's alerts are not changed: copies carry the annotations.
func (e *Engine) withReleases(ctx context.Context, alerts []*rules.Alert) []*rules.Alert {
	if e.releases.Load() == nil {
		return alerts
	}
	out := make([]*rules.Alert, len(alerts))
	for i, a := range alerts {
		out[i] = a
		rel, ok := e.releaseOf(ctx, a.Labels, a.ActiveAt)
		if !ok {
			continue
		}
		c := *a
		b := labels.NewBuilder(a.Annotations)
		b.Set("release", rel.Name)
		b.Set("release_version", rel.Version)
		b.Set("release_url", e.releaseURL(rel.Name))
		c.Annotations = b.Labels()
		out[i] = &c
	}
	return out
}

// Firing returns the firing alerts of a service (silenced ones marked):
// what the release engine's spec.analysis.abortOnAlerts reads.
func (e *Engine) Firing(ctx context.Context, service string) []Alert {
	var out []Alert
	for _, a := range e.Alerts(ctx) {
		if a.Labels["service"] == service && a.State != "pending" {
			out = append(out, a)
		}
	}
	return out
}

// ReleaseSeam is the release engine's view of the alert engine
// (release.Alerts): the firing alerts of a service, which
// spec.analysis.abortOnAlerts selects from.
type ReleaseSeam struct{ Engine *Engine }

// Firing returns the service's firing alerts, silenced ones marked.
func (s ReleaseSeam) Firing(ctx context.Context, service string) ([]release.FiringAlert, error) {
	var out []release.FiringAlert
	for _, a := range s.Engine.Firing(ctx, service) {
		out = append(out, release.FiringAlert{Name: a.Name, Labels: a.Labels, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt,
			Silenced: a.State == "silenced", Summary: a.Annotations["summary"]})
	}
	return out, nil
}

// ReleaseLookup is the alert engine's view of the release engine
// (Releases): the newest release of a service that ran while an alert was
// active.
type ReleaseLookup struct{ Engine *release.Engine }

// ReleaseDuring implements Releases.
func (l ReleaseLookup) ReleaseDuring(ctx context.Context, service string, activeAt time.Time) (Release, bool) {
	rs, err := l.Engine.List(ctx) // newest first
	if err != nil {
		return Release{}, false
	}
	for _, r := range rs {
		if r.Spec.Service != service {
			continue
		}
		if r.Status.Phase.Terminal() && r.Status.Finished.Before(activeAt) {
			// It ended before the alert began, and (one release of a
			// service runs at a time) every older one too.
			return Release{}, false
		}
		return Release{Name: r.Metadata.Name, Version: r.Spec.Version, Phase: string(r.Status.Phase)}, true
	}
	return Release{}, false
}
