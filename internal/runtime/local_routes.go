package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"sigs.k8s.io/yaml"
)

// RouteSink receives the route templates of services that do not report
// their own (services without kit): the routes their .pave.yaml lists,
// e.g. "GET /v1/orders/{id}". The embedded gateway implements it; it
// counts and splits requests by these templates instead of by their first
// path segment.
type RouteSink interface {
	// CheckRoutes reports whether patterns are route templates the sink
	// accepts, so a bad list is refused at deploy time.
	CheckRoutes(patterns []string) error
	// SetServiceRoutes replaces the service's templates; nil clears them.
	SetServiceRoutes(service string, patterns []string) error
}

// routeFile is read from a service's source directory (or the directory
// of its binary) for the routes list.
const routeFile = ".pave.yaml"

// routeList is the part of .pave.yaml the runtime reads; the other fields
// (the template record of pave new) are not its business.
type routeList struct {
	Routes []string `json:"routes"`
}

// readRoutes returns the routes of the .pave.yaml beside the deployment's
// source or binary; none when there is no such file.
func readRoutes(d Deployment) ([]string, error) {
	var dir string
	switch {
	case d.Source != "":
		dir = d.Source
	case d.Binary != "":
		dir = filepath.Dir(d.Binary)
	default:
		return nil, nil
	}
	path := filepath.Join(dir, routeFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var rl routeList
	if err := yaml.Unmarshal(data, &rl); err != nil {
		return nil, fmt.Errorf("%s: %w (want routes: [\"GET /v1/orders/{id}\", ...])", path, err)
	}
	return rl.Routes, nil
}

// deployRoutes reads and checks d's route list for Deploy.
func (l *Local) deployRoutes(d Deployment) ([]string, error) {
	routes, err := readRoutes(d)
	if err != nil {
		return nil, invalid(artifactField(d), "%v", err)
	}
	if len(routes) > 0 && l.opts.Routes != nil {
		if err := l.opts.Routes.CheckRoutes(routes); err != nil {
			return nil, invalid(artifactField(d), "%s: %v", filepath.Join(routeDir(d), routeFile), err)
		}
	}
	return routes, nil
}

func artifactField(d Deployment) string {
	if d.Source != "" {
		return "source"
	}
	return "binary"
}

func routeDir(d Deployment) string {
	if d.Source != "" {
		return d.Source
	}
	return filepath.Dir(d.Binary)
}

// publishRoutes hands each service's templates to the route sink: the
// union of the lists of its deployed versions, oldest version first, so a
// canary that adds a route and the stable version are counted under the
// same keys. It runs after each reconcile, so a restarted control plane
// and a new release's version both reach the gateway.
func (l *Local) publishRoutes(stored []storedDeployment) {
	if l.opts.Routes == nil {
		return
	}
	sorted := slices.Clone(stored)
	sort.SliceStable(sorted, func(i, j int) bool {
		if !sorted[i].Deployed.Equal(sorted[j].Deployed) {
			return sorted[i].Deployed.Before(sorted[j].Deployed)
		}
		return sorted[i].Version < sorted[j].Version
	})
	want := map[string][]string{}
	for _, sd := range sorted {
		for _, r := range sd.Routes {
			if !slices.Contains(want[sd.Service], r) {
				want[sd.Service] = append(want[sd.Service], r)
			}
		}
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	for service, routes := range want {
		if slices.Equal(l.routes[service], routes) {
			continue
		}
		if err := l.opts.Routes.SetServiceRoutes(service, routes); err != nil {
			// Each list was checked at deploy; their union can still be
			// too long. The previous templates stay in force.
			l.log.Warn("route templates not applied", "service", service, "routes", len(routes), "err", err)
		}
		l.routes[service] = routes
	}
	for service := range l.routes {
		if _, ok := want[service]; !ok {
			if err := l.opts.Routes.SetServiceRoutes(service, nil); err != nil {
				l.log.Warn("route templates not cleared", "service", service, "err", err)
			}
			delete(l.routes, service)
		}
	}
}
