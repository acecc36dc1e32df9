package main

import (
	"context"
	"path/filepath"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/servicemap"
	"github.com/pave-platform/pave/internal/telemetry"
)

// registerFleetOfServices adds the services inventory and the service
// map to pave up's API.
func registerFleetOfServices(srv *server.Server, cfg config.Config, tel telemetry.Store, eng *release.Engine) {
	server.FleetServicesAPI{
		FleetFile: cfg.FleetFile, VulnDB: cfg.VulnDB,
		CacheDir: filepath.Join(cfg.DataDir, "fleet-clones"),
		Releases: inventory.ReleaseList(eng.List),
	}.Register(srv)
	server.ServiceMapAPI{Store: tel, Canaries: func(ctx context.Context) ([]servicemap.Canary, error) {
		return runningCanaries(ctx, eng)
	}}.Register(srv)
}

// runningCanaries are the versions of the releases not yet finished.
func runningCanaries(ctx context.Context, eng *release.Engine) ([]servicemap.Canary, error) {
	all, err := eng.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []servicemap.Canary
	for _, r := range all {
		if !r.Status.Phase.Terminal() {
			out = append(out, servicemap.Canary{Service: r.Spec.Service, Version: r.Spec.Version})
		}
	}
	return out, nil
}
