package runners

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func localPool(t *testing.T, extra string) RunnerPool {
	t.Helper()
	p, err := Parse([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"linux"},
"spec":{"labels":["self-hosted","linux"],"min":1,"max":4,"idleTimeout":"1m","target":{"local":{"command":["sleep","300"]}}` + extra + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// countRunners counts this test's runner processes by their environment.
func countRunners(t *testing.T, pool string) int {
	t.Helper()
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), "PAVE_RUNNER_POOL="+pool+"\x00") {
			if st, err := os.ReadFile(filepath.Join(filepath.Dir(f), "stat")); err == nil && !strings.Contains(string(st), ") Z ") {
				n++
			}
		}
	}
	return n
}

func TestControllerScalesLocalRunnersOnTheQueue(t *testing.T) {
	q := newQueue(t)
	c := NewController(q, q.store)
	now := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	p := localPool(t, "")
	p.Metadata.Name = "ctl-" + strings.ToLower(t.Name()[len(t.Name())-5:])
	if err := c.Apply(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.mu.Lock(); c.pools[p.Metadata.Name].target.Close(); c.mu.Unlock() })
	c.Reconcile(context.Background())
	if s := c.Status()[0]; s.Runners != 1 || countRunners(t, p.Metadata.Name) != 1 {
		t.Fatalf("min 1: status %+v, processes %d", s, countRunners(t, p.Metadata.Name))
	}
	h := q.WebhookHandler(func() string { return secret }, c.Now)
	for i, id := range []string{"a", "b", "c"} {
		delivery(t, h, id, "queued", int64(i+1), "")
	}
	c.Reconcile(context.Background())
	if s := c.Status()[0]; s.Runners != 3 || s.Queued != 3 || countRunners(t, p.Metadata.Name) != 3 {
		t.Fatalf("three queued: status %+v, processes %d", s, countRunners(t, p.Metadata.Name))
	}
	for i, id := range []string{"a2", "b2", "c2"} {
		delivery(t, h, id, "in_progress", int64(i+1), "")
	}
	for i, id := range []string{"a3", "b3", "c3"} {
		delivery(t, h, id, "completed", int64(i+1), "")
	}
	now = now.Add(30 * time.Second)
	c.Reconcile(context.Background())
	if s := c.Status()[0]; s.Runners != 3 {
		t.Fatalf("idle for less than the idle timeout: want 3 kept, got %+v", s)
	}
	now = now.Add(2 * time.Minute)
	c.Reconcile(context.Background())
	if s := c.Status()[0]; s.Runners != 1 {
		t.Fatalf("idle past the timeout: want back to min 1, got %+v", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for countRunners(t, p.Metadata.Name) != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := countRunners(t, p.Metadata.Name); n != 1 {
		t.Fatalf("processes after scale-down: %d", n)
	}
	if s := c.Status()[0]; s.RunnerHoursToday <= 0 {
		t.Fatalf("runner-hours not counted: %+v", s)
	}
}

// flakyTarget fails while down is set; it records what it was asked.
type flakyTarget struct {
	down  bool
	calls []int
}

func (f *flakyTarget) Scale(_ context.Context, n int) (int, error) {
	f.calls = append(f.calls, n)
	if f.down {
		return 0, errors.New("connection refused")
	}
	return n, nil
}
func (f *flakyTarget) Close() error { return nil }

func TestControllerTargetUnreachableBacksOffAndStaysInBounds(t *testing.T) {
	q := newQueue(t)
	c := NewController(q, q.store)
	ft := &flakyTarget{down: true}
	c.NewTarget = func(RunnerPool) (Target, error) { return ft, nil }
	now := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	if err := c.Apply(context.Background(), localPool(t, "")); err != nil {
		t.Fatal(err)
	}
	c.Reconcile(context.Background())
	s := c.Status()[0]
	if !strings.Contains(s.TargetError, "connection refused") || s.RetryAt == "" {
		t.Fatalf("want the error and a retry time reported: %+v", s)
	}
	c.Reconcile(context.Background()) // within the backoff: no call
	if len(ft.calls) != 1 {
		t.Fatalf("retried inside the backoff: %v", ft.calls)
	}
	h := q.WebhookHandler(func() string { return secret }, c.Now)
	for i := range 9 { // far more than max 4
		delivery(t, h, "q"+string(rune('a'+i)), "queued", int64(i+1), "")
	}
	ft.down = false
	now = now.Add(2 * time.Second)
	c.Reconcile(context.Background())
	if got := ft.calls[len(ft.calls)-1]; got != 4 {
		t.Fatalf("back up with 9 queued: want max 4, asked %d (%v)", got, ft.calls)
	}
	if s := c.Status()[0]; s.TargetError != "" || s.Runners != 4 {
		t.Fatalf("after recovery: %+v", s)
	}
	for _, n := range ft.calls {
		if n < 1 || n > 4 {
			t.Fatalf("asked %d, outside [1, 4]: %v", n, ft.calls)
		}
	}
}

func TestControllerRefusesKubernetesTargetForNow(t *testing.T) {
	c := newController(t)
	p := localPool(t, "")
	p.Spec.Target = TargetSpec{Kubernetes: &KubernetesTarget{Cluster: "a", AutoscalingRunnerSet: "ns/x"}}
	var fe *FieldError
	if err := c.Apply(context.Background(), p); !errors.As(err, &fe) || fe.Path != "spec.target.kubernetes" {
		t.Fatalf("want a field error on spec.target.kubernetes, got %v", err)
	}
}
