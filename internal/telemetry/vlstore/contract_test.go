package vlstore_test

import (
	"context"
	"testing"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/storetest"
	"github.com/pave-platform/pave/internal/telemetry/vlstore"
	"github.com/pave-platform/pave/internal/telemetry/vlstore/vltest"
)

// openCluster starts a real VictoriaLogs cluster and a store on it.
func openCluster(t *testing.T) (*vltest.Cluster, *vlstore.Store) {
	t.Helper()
	c := vltest.StartCluster(t)
	o, err := vlstore.ParseURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	s, err := vlstore.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

func TestVictoriaLogsClusterKeepsTheContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) telemetry.Store {
		_, s := openCluster(t)
		return s
	})
}
