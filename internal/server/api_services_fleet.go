package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/scaffold"
)

// FleetServicesAPI serves GET /api/v1/fleet/services: the inventory of
// the service repositories in the fleet file (setting fleet-file), the
// same rows as `pave services`. A report takes seconds (clones, scans), so
// one is kept for MaxAge; ?refresh=1 makes a new one.
type FleetServicesAPI struct {
	FleetFile string
	CacheDir  string
	VulnDB    string
	Releases  inventory.Releases
	MaxAge    time.Duration

	mu   *sync.Mutex
	last *fleetReport
}

// FleetReport is the answer.
type fleetReport struct {
	TemplateLatest int                 `json:"templateLatest"`
	KitLatest      string              `json:"kitLatest"`
	FleetFile      string              `json:"fleetFile"`
	Generated      time.Time           `json:"generated"`
	Services       []inventory.Service `json:"services"`
}

// Register adds the route to s.
func (a FleetServicesAPI) Register(s *Server) {
	a.mu = &sync.Mutex{}
	if a.MaxAge == 0 {
		a.MaxAge = time.Minute
	}
	p := &a
	s.HandleFunc("GET /api/v1/fleet/services", p.get)
}

func (a *FleetServicesAPI) get(w http.ResponseWriter, r *http.Request) {
	if a.FleetFile == "" {
		WriteError(w, http.StatusNotFound, errors.New("no fleet file: start pave up with --fleet-file FILE (a fleet.yaml listing the service repositories)"))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last != nil && r.URL.Query().Get("refresh") == "" && time.Since(a.last.Generated) < a.MaxAge {
		WriteJSON(w, http.StatusOK, a.last)
		return
	}
	rep, err := a.report(r.Context())
	if err != nil {
		WriteError(w, http.StatusUnprocessableEntity, err)
		return
	}
	a.last = rep
	WriteJSON(w, http.StatusOK, rep)
}

func (a *FleetServicesAPI) report(ctx context.Context) (*fleetReport, error) {
	data, err := os.ReadFile(a.FleetFile)
	if err != nil {
		return nil, fmt.Errorf("setting fleet-file: %w", err)
	}
	f, err := inventory.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.FleetFile, err)
	}
	base, err := filepath.Abs(filepath.Dir(a.FleetFile))
	if err != nil {
		return nil, err
	}
	cache := a.CacheDir
	if cache == "" {
		cache = inventory.DefaultCacheDir()
	}
	rows := inventory.Inventory(ctx, f, inventory.Options{
		Sources: &inventory.Sources{Base: base, CacheDir: cache}, VulnDB: a.VulnDB, Releases: a.Releases, KitLatest: scaffold.DefaultKitVersion,
	})
	return &fleetReport{TemplateLatest: scaffold.CurrentVersion(), KitLatest: scaffold.DefaultKitVersion, FleetFile: a.FleetFile, Generated: time.Now(), Services: rows}, nil
}
