package datadir

import (
	"errors"
	"os"
	"path/filepath"
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

func TestCheckOwner(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "clusters", "seoul")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwner(sub); err != nil {
		t.Fatalf("an unlocked directory: %v", err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOwner(sub); err != nil {
		t.Fatalf("the holder itself, in a subdirectory: %v", err)
	}
	// Another process's record while the lock is held: refused.
	if err := l.SetOwner(Owner{PID: os.Getpid() + 100000, Address: "127.0.0.1:7070"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckOwner(sub); !errors.Is(err, ErrLocked) {
		t.Fatalf("a directory held by another pid: want ErrLocked, got %v", err)
	}
	l.Release()
	if err := CheckOwner(sub); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
