package runners

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// TestQueueIsBackAfterARestart: the jobs waiting and running, the
// history and the delivery ids seen come back from the store, so a
// redelivery after the restart is still a duplicate, and a finished job
// is not revived by a late "queued".
func TestQueueIsBackAfterARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	q, err := OpenQueue(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	h := q.WebhookHandler(func() string { return secret }, time.Now)
	delivery(t, h, "r1", "queued", 1, "")
	delivery(t, h, "r2", "queued", 2, "")
	delivery(t, h, "r3", "in_progress", 2, "")
	delivery(t, h, "r4", "queued", 3, "")
	delivery(t, h, "r5", "in_progress", 3, "")
	delivery(t, h, "r6", "completed", 3, "")
	st.Close()

	st2 := openStore(t, dir)
	q2, err := OpenQueue(ctx, st2)
	if err != nil {
		t.Fatal(err)
	}
	labels := []string{"self-hosted", "linux"}
	if queued, busy, _ := q2.Counts(labels); queued != 1 || busy != 1 {
		t.Fatalf("after restart: want 1 queued 1 busy, got %d %d", queued, busy)
	}
	if hist := q2.History(labels, time.Time{}); len(hist) != 1 || hist[0].Duration != 5*time.Minute {
		t.Fatalf("history after restart: %+v", hist)
	}
	h2 := q2.WebhookHandler(func() string { return secret }, time.Now)
	if w := delivery(t, h2, "r1", "queued", 1, ""); w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte("duplicate")) {
		t.Fatalf("redelivery after restart: want 200 duplicate, got %d %s", w.Code, w.Body)
	}
	if w := delivery(t, h2, "r7", "queued", 3, ""); w.Code != http.StatusAccepted {
		t.Fatalf("late queued: %d", w.Code)
	}
	if queued, busy, _ := q2.Counts(labels); queued != 1 || busy != 1 {
		t.Fatalf("a late queued of a finished job revived it: %d queued %d busy", queued, busy)
	}
	if s := q2.Stats(); s.Duplicates != 1 || s.History != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestQueueCrashBetweenHistoryAndDelete: a job with both its history
// event and its object (a crash between the two writes) is finished.
func TestQueueCrashBetweenHistoryAndDelete(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "")
	now := time.Now().UTC()
	b, _ := json.Marshal(trackedJob{Labels: []string{"linux"}, Queued: now.Add(-time.Minute), Started: now.Add(-30 * time.Second)})
	if _, err := st.Put(ctx, kindJob, "9", b, 0); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(finishedJob{ID: 9, Labels: []string{"linux"}, Queued: now.Add(-time.Minute), Started: now.Add(-30 * time.Second), Completed: now})
	if _, err := st.Append(ctx, state.Event{Kind: kindHistory, Key: "9", Type: "completed", Data: b}); err != nil {
		t.Fatal(err)
	}
	q, err := OpenQueue(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.Tracked != 0 || s.History != 1 {
		t.Fatalf("want the job finished: %+v", s)
	}
	if _, err := st.Get(ctx, kindJob, "9"); err == nil {
		t.Fatal("the finished job's object is still stored")
	}
}

// TestPoolsAndTheirRecordAreBackAfterARestart: pools applied, today's
// runner-hours, the decisions and the day's samples survive a restart.
func TestPoolsAndTheirRecordAreBackAfterARestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	q, err := OpenQueue(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	c := NewController(q, st)
	ft := &flakyTarget{}
	c.NewTarget = func(RunnerPool) (Target, error) { return ft, nil }
	now := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC)
	c.Now = func() time.Time { return now }
	if err := c.Apply(ctx, localPool(t, `,"runnerHoursPerDay":40`)); err != nil {
		t.Fatal(err)
	}
	c.Reconcile(ctx)
	now = now.Add(time.Hour)
	h := q.WebhookHandler(func() string { return secret }, c.Now)
	delivery(t, h, "a", "queued", 1, "")
	delivery(t, h, "b", "queued", 2, "")
	c.Reconcile(ctx)
	before := c.Status()[0]
	if before.Runners != 2 || before.RunnerHoursToday != 1 {
		t.Fatalf("before restart: %+v", before)
	}
	st.Close() // as a kill -9 leaves it: every write returned before

	st2 := openStore(t, dir)
	q2, err := OpenQueue(ctx, st2)
	if err != nil {
		t.Fatal(err)
	}
	c2 := NewController(q2, st2)
	c2.NewTarget = func(RunnerPool) (Target, error) { return &flakyTarget{}, nil }
	c2.Now = c.Now
	if err := c2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := c2.Detail("linux")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.RunnerHoursToday != 1 || d.Spec.RunnerHoursPerDay != 40 || d.Spec.Max != 4 {
		t.Fatalf("pool after restart: %+v", d)
	}
	if len(d.Decisions) != 2 || d.Decisions[0].To != 2 || d.Decisions[0].Reason != "queue" || d.Decisions[1].Reason != "min 1" {
		t.Fatalf("decisions after restart (newest first): %+v", d.Decisions)
	}
	if len(d.Samples) != 2 || d.Samples[1].Queued != 2 {
		t.Fatalf("samples after restart: %+v", d.Samples)
	}
	c2.Reconcile(ctx)
	if s := c2.Status()[0]; s.Runners != 2 || s.Queued != 2 {
		t.Fatalf("first pass after restart: %+v", s)
	}
}

// TestStoredPoolWhoseTargetIsGoneReportsIt: a pool whose cluster was
// removed while the control plane was down is loaded and says why it
// cannot scale.
func TestStoredPoolWhoseTargetIsGoneReportsIt(t *testing.T) {
	ctx := context.Background()
	c := newController(t)
	c.NewTarget = func(RunnerPool) (Target, error) { return &flakyTarget{}, nil }
	if err := c.Apply(ctx, localPool(t, "")); err != nil {
		t.Fatal(err)
	}
	c2 := NewController(c.Queue, c.Store)
	c2.NewTarget = func(RunnerPool) (Target, error) {
		return nil, &FieldError{Path: "spec.target.kubernetes.cluster", Err: ErrInvalid}
	}
	if err := c2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	c2.Reconcile(ctx)
	if s := c2.Status(); len(s) != 1 || s[0].TargetError == "" || s[0].RetryAt == "" {
		t.Fatalf("want the pool loaded with its target error: %+v", s)
	}
	if err := c2.Delete(ctx, "linux"); err != nil {
		t.Fatal(err)
	}
	c3 := NewController(c.Queue, c.Store)
	if err := c3.Load(ctx); err != nil || len(c3.Status()) != 0 {
		t.Fatalf("deleted pool came back: %v %+v", err, c3.Status())
	}
}
