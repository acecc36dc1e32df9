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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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
	// A pause between a goroutine's writes leaves the lock free now and
	// then, as a control plane's bursts do: SQLite's busy wait is not a
	// queue, and a process that never lets go of the lock starves others.
	pause, _ := time.ParseDuration(os.Getenv("PAVE_STATE_CHILD_PAUSE"))
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
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
}

// Another process writing the same file (`pave token create --data-dir`
// while `pave up` runs) neither fails nor makes the store fail: a write
// transaction takes the write lock when it begins, waiting for it up to
// the busy timeout, so it never reads under a snapshot that another
// process's commit has made stale, which SQLite refuses with SQLITE_BUSY
// at once, without waiting.
func TestSQLiteSharedWithAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(path) // the schema exists before the child opens it
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteGroupCommitChild$")
	cmd.Env = append(os.Environ(), "PAVE_STATE_CHILD_DB="+path, "PAVE_STATE_CHILD_PAUSE=5ms")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var childErr strings.Builder
	cmd.Stderr = &childErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	defer stop()
	sc := bufio.NewScanner(out)
	for n := 0; n < 100; n++ { // the child is writing
		if !sc.Scan() {
			t.Fatalf("the child stopped after %d writes", n)
		}
	}
	var acked atomic.Int64
	go func() {
		for sc.Scan() {
			acked.Add(1)
		}
	}()
	ctx := context.Background()
	for i := range 50 {
		k := fmt.Sprintf("parent-%03d", i%20)
		o, err := s.Get(ctx, "k", k)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, "k", k, []byte("y"), o.Version); err != nil {
			t.Fatalf("write %d while another process writes: %v", i, err)
		}
		if _, err := s.TryLease(ctx, "parent", "me", "", time.Minute); err != nil {
			t.Fatalf("lease %d while another process writes: %v", i, err)
		}
	}
	during := acked.Load()
	stop() // its stderr is whole once it has exited
	if strings.Contains(childErr.String(), "child:") || during == 0 {
		t.Fatalf("the other process wrote %d times meanwhile, then failed: %s", during, childErr.String())
	}
	t.Logf("the other process wrote %d times meanwhile", during)
}
