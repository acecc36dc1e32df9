package state

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
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
