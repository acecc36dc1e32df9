package state

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// An embedded cluster's own store never held the control plane's lease:
// the leader's writes through it must land, while the same store written
// directly under that fence refuses them.
func TestUnfencedStoreTakesTheLeadersWrites(t *testing.T) {
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := WithFence(context.Background(), Fence{Lease: "control-plane", Holder: "a", Token: 1})
	if _, err := s.Put(ctx, "runtime.deployment", "hello/v1", []byte("{}"), Any); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced put on a store without the lease: %v, want ErrFenced", err)
	}
	u := Unfenced(s)
	if _, err := u.Put(ctx, "runtime.deployment", "hello/v1", []byte("{}"), Any); err != nil {
		t.Fatalf("unfenced put: %v", err)
	}
	if _, err := u.Append(ctx, Event{Kind: "runtime.deployment", Key: "hello/v1", Type: "deployed"}); err != nil {
		t.Fatalf("unfenced append: %v", err)
	}
	if err := u.Delete(ctx, "runtime.deployment", "hello/v1", Any); err != nil {
		t.Fatalf("unfenced delete: %v", err)
	}
	if _, err := s.Get(context.Background(), "runtime.deployment", "hello/v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the unfenced delete: %v", err)
	}
}
