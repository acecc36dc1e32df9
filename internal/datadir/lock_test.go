package datadir

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestAcquireIsExclusiveAndNamesTheOwner(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetAddress("127.0.0.1:7070"); err != nil {
		t.Fatal(err)
	}
	// flock conflicts between two open files even in one process, as
	// between two processes.
	_, err = Acquire(dir)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire: want a LockedError, got %v", err)
	}
	if le.Owner.PID != os.Getpid() || le.Owner.Address != "127.0.0.1:7070" {
		t.Fatalf("owner %+v, want pid %d at 127.0.0.1:7070", le.Owner, os.Getpid())
	}
	if !strings.Contains(err.Error(), "http://127.0.0.1:7070") {
		t.Fatalf("error does not name the API: %v", err)
	}
	l.Release()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}
