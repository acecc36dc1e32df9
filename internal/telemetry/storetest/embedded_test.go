package storetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/storetest"
)

func TestEmbeddedStoreKeepsTheContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) telemetry.Store {
		s, err := telemetry.Open(context.Background(), telemetry.Options{Dir: t.TempDir(), FlushInterval: time.Hour, MaintainEvery: -1, BlockRows: 128})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
