package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Concurrent writers share commits, yet each keeps its own outcome: a
// conflict, a fenced write and a given-up write fail alone, every other
// write lands once, and all of it is there after reopening.
func TestSQLiteGroupCommitOutcomes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, "k", "shared", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	l, err := s.TryLease(ctx, "leader", "a", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	deposed := WithFence(ctx, Fence{Lease: "leader", Holder: "a", Token: l.Token + 1})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 64 {
		wg.Go(func() { // its own key, with an event: lands
			if _, _, err := s.PutAppend(ctx, "k", fmt.Sprint("own-", i), []byte(fmt.Sprint(i)), 0, Event{Kind: "k", Key: fmt.Sprint("own-", i), Type: "created"}); err != nil {
				t.Errorf("own key %d: %v", i, err)
			}
		})
		wg.Go(func() { // one key, one version: exactly one wins
			_, err := s.Put(ctx, "k", "shared", []byte(fmt.Sprint(i)), 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrConflict):
				conflicts++
			default:
				t.Errorf("shared key: %v", err)
			}
		})
		if i%8 == 0 {
			wg.Go(func() {
				if _, err := s.Put(deposed, "k", fmt.Sprint("fenced-", i), []byte("x"), Any); !errors.Is(err, ErrFenced) {
					t.Errorf("a deposed write: %v, want ErrFenced", err)
				}
				if _, err := s.Put(cancelled, "k", fmt.Sprint("cancelled-", i), []byte("x"), Any); !errors.Is(err, context.Canceled) {
					t.Errorf("a cancelled write: %v, want context.Canceled", err)
				}
			})
		}
	}
	wg.Wait()
	if wins != 1 || conflicts != 63 {
		t.Errorf("shared key: %d won, %d conflicts; want 1 and 63", wins, conflicts)
	}
	s.Close()
	if _, err := s.Put(ctx, "k", "late", []byte("x"), Any); !errors.Is(err, errClosed) {
		t.Errorf("a write after Close: %v, want %v", err, errClosed)
	}

	s, err = OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.List(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	own := 0
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.Key, "own-"):
			own++
		case o.Key == "shared":
			if o.Version != 2 {
				t.Errorf("shared at version %d, want 2", o.Version)
			}
		default:
			t.Errorf("%s landed; it should not have", o.Key)
		}
	}
	evs, err := s.Events(ctx, "k", "", 0, 1000)
	if own != 64 || err != nil || len(evs) != 64 {
		t.Errorf("%d own keys and %d events (%v), want 64 each", own, len(evs), err)
	}
}

// The durable-ack rule across kill -9: a child process writes from many
// goroutines and prints each key once its Put returned; every key printed
// before the kill is in the file afterwards.
func TestSQLiteGroupCommitKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteGroupCommitChild$")
	cmd.Env = append(os.Environ(), "PAVE_STATE_CHILD_DB="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[k] = true
		}
		if len(acked) == 500 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // what it printed before it died counts too
		if k, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked[k] = true
		}
	}
	_ = cmd.Wait()
	if len(acked) < 500 {
		t.Fatalf("the child acknowledged %d writes before it was killed, want 500", len(acked))
	}
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	objs, err := s.List(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
	}
	for k := range acked {
		if !have[k] {
			t.Errorf("%s was acknowledged but is not in the store after kill -9", k)
		}
	}
	t.Logf("%d writes acknowledged before the kill, %d in the store", len(acked), len(have))
}

// TestSQLiteGroupCommitChild is the child of TestSQLiteGroupCommitKill9:
// it writes until killed.
func TestSQLiteGroupCommitChild(t *testing.T) {
	path := os.Getenv("PAVE_STATE_CHILD_DB")
	if path == "" {
		return // run only as the child
	}
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("g%02d-%06d", g, i)
				if _, err := s.Put(context.Background(), "k", k, []byte("x"), 0); err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					return
				}
				mu.Lock()
				fmt.Println("acked", k)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
