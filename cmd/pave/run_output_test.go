package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/telemetry"
)

type appendRecorder struct {
	fail bool
	got  []telemetry.Log
}

func (a *appendRecorder) AppendLogs(_ context.Context, logs []telemetry.Log) error {
	if a.fail {
		return telemetry.ErrBusy
	}
	a.got = append(a.got, logs...)
	return nil
}

func TestRuntimeOutput(t *testing.T) {
	store := &appendRecorder{fail: true}
	o := &runtimeOutput{store: store, cluster: "local", datacenter: "local", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	o.Line("orders", "v1", "orders-v1-0", "stdout", []byte(`{"time":"x","level":"INFO","service":"orders","msg":"kit record"}`))
	o.Line("orders", "v1", "orders-v1-0", "stdout", []byte("plain line"))
	o.Line("orders", "v1", "orders-v1-1", "stderr", []byte("panic: boom"))
	o.flush(context.Background()) // the store is busy: the batch is kept
	if len(store.got) != 0 || len(o.buf) != 2 {
		t.Fatalf("after a busy store: stored %d, buffered %d", len(store.got), len(o.buf))
	}
	store.fail = false
	o.flush(context.Background())
	if len(store.got) != 2 {
		t.Fatalf("stored %+v; want the plain line and the stderr line, not kit's record", store.got)
	}
	if g := store.got[0]; g.Message != "plain line" || g.Level != "INFO" || g.Attrs.Map()["stream"] != "stdout" || g.Service != "orders" || g.Cluster != "local" {
		t.Errorf("stdout line stored as %+v", g)
	}
	if g := store.got[1]; g.Message != "panic: boom" || g.Level != "ERROR" || g.Attrs.Map()["instance"] != "orders-v1-1" {
		t.Errorf("stderr line stored as %+v", g)
	}
}

// fleet.ReleaseTarget is how the release engine drives the local runtime: a
// Remove of a version that is gone is no error, and Status reports ready
// only when every desired replica is.
func TestReleaseTargetAdapter(t *testing.T) {
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rt, err := runtime.NewLocal(runtime.LocalOptions{Store: st, DataDir: filepath.Join(dir, "data"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var target release.Target = fleet.ReleaseTarget(rt)
	ctx := context.Background()
	if err := target.Deploy(ctx, release.Deployment{Service: "orders", Version: "v2", Binary: "/bin/true", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	ready, n, desired, err := target.Status(ctx, "orders", "v2")
	if err != nil || ready || n != 0 || desired != 2 {
		t.Fatalf("status before any instance ran: %v %d %d %v", ready, n, desired, err)
	}
	if err := target.Deploy(ctx, release.Deployment{Service: "orders", Version: "v2", Image: "orders:v2", Replicas: 1}); err == nil {
		t.Fatal("an image was accepted by the local runtime")
	}
	for range 2 {
		if err := target.Remove(ctx, "orders", "v2"); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	if _, _, _, err := target.Status(ctx, "orders", "v2"); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("status after remove: %v", err)
	}
}

func TestPSShowsClustersWhenThereAreSeveral(t *testing.T) {
	var b strings.Builder
	printPS(&b, []runtime.Status{{Cluster: "seoul", Service: "hello", Version: "v1", Replicas: 1, Ready: 1,
		Instances: []runtime.Instance{{Name: "hello-v1-0", State: "ready", PID: 42, Port: 9000, Started: time.Now()}}},
		{Cluster: "busan", Service: "hello", Version: "v1", Replicas: 1}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "CLUSTER") || !strings.HasPrefix(lines[1], "seoul") || !strings.HasPrefix(lines[2], "busan") {
		t.Fatalf("ps with clusters:\n%s", b.String())
	}
	b.Reset()
	printPS(&b, []runtime.Status{{Service: "hello", Version: "v1", Replicas: 1}})
	if strings.Contains(b.String(), "CLUSTER") {
		t.Fatalf("one cluster shows a cluster column:\n%s", b.String())
	}
}
