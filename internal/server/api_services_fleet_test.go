package server

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/inventory/inventorytest"
)

// The services page's API reports a real repository and a bad entry, the
// rows in triage order.
func TestFleetServicesAPI(t *testing.T) {
	root := t.TempDir()
	inventorytest.NewService(t, filepath.Join(root, "svc"), inventorytest.Service{Name: "ledger", Version: 1})
	inventorytest.NewService(t, filepath.Join(root, "svc"), inventorytest.Service{Name: "orders"})
	fleet := filepath.Join(root, "fleet.yaml")
	os.WriteFile(fleet, []byte("services:\n  - path: svc/orders\n  - path: svc/ledger\n  - path: svc/missing\n"), 0o644)
	s := New(Options{Open: true, Log: slog.New(slog.DiscardHandler)})
	FleetServicesAPI{FleetFile: fleet, CacheDir: filepath.Join(root, "cache")}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	resp, err := ts.Client().Get(ts.URL + "/api/v1/fleet/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Services []inventory.Service `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if len(rep.Services) != 3 || rep.Services[0].Name != "missing" || !strings.Contains(rep.Services[0].Error, "no such file") ||
		rep.Services[1].Name != "ledger" || rep.Services[1].TemplateBehind == 0 || rep.Services[2].Name != "orders" {
		t.Errorf("rows %+v", rep.Services)
	}
}
