// Package datadir guards a control plane's data directory: one `pave up`
// owns it at a time. Two control planes on one directory would both adopt
// the same instances, both drive the same releases and race on every file
// (the telemetry WAL, the state database), so the second one must stop
// before it reads anything.
package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockFile is the lock's name inside the data directory.
const LockFile = "pave.lock"

// Owner is what the lock holder writes into the lock file, so a second
// `pave up` can say who holds it.
type Owner struct {
	PID     int       `json:"pid"`
	Address string    `json:"address,omitempty"` // the API's address
	Started time.Time `json:"started"`
}

// ErrLocked is returned when another process holds the data directory.
var ErrLocked = errors.New("data directory is in use")

// LockedError names the holder of a data directory.
type LockedError struct {
	Dir   string
	Owner Owner // zero when the file could not be read
}

func (e *LockedError) Error() string {
	who := "another pave up"
	if e.Owner.PID > 0 {
		who = fmt.Sprintf("pave up (pid %d", e.Owner.PID)
		if e.Owner.Address != "" {
			who += ", API http://" + e.Owner.Address
		}
		who += ")"
	}
	return fmt.Sprintf("%s: %s holds it; one control plane owns a data directory: use that one (--server), stop it, or give this one another --data-dir", e.Dir, who)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held data-directory lock; it lasts until Release or the end
// of the process (the kernel drops a flock with its last descriptor, so a
// crashed control plane never leaves a stale lock).
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the exclusive lock of dir (created if missing) without
// waiting: a held lock fails at once with a *LockedError naming its owner.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, Owner: ReadOwner(dir)}
		}
		return nil, fmt.Errorf("data directory lock %s: %w", path, err)
	}
	l := &Lock{f: f, path: path}
	if err := l.SetOwner(Owner{PID: os.Getpid(), Started: time.Now().UTC()}); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// SetOwner rewrites the owner record, e.g. once the API address is known.
func (l *Lock) SetOwner(o Owner) error {
	b, _ := json.Marshal(o)
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	if _, err := l.f.WriteAt(append(b, '\n'), 0); err != nil {
		return fmt.Errorf("data directory lock: %w", err)
	}
	return nil
}

// SetAddress records the API's address in the owner record.
func (l *Lock) SetAddress(addr string) error {
	o := Owner{PID: os.Getpid(), Address: addr, Started: time.Now().UTC()}
	return l.SetOwner(o)
}

// Release drops the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}

// ReadOwner reads the owner record of dir's lock; zero if there is none.
func ReadOwner(dir string) Owner {
	var o Owner
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if err == nil {
		_ = json.Unmarshal([]byte(strings.TrimSpace(string(b))), &o)
	}
	return o
}

// CheckOwner guards work only the owner of a data directory may do (the
// runtime's adoption of running instances): it finds the lock file at or
// above dir and fails when another live process holds it. A directory no
// control plane locked (a test, an embedded runtime) passes.
func CheckOwner(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		path := filepath.Join(d, LockFile)
		if f, err := os.Open(path); err == nil {
			defer f.Close()
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
			if err == nil {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				return nil // nobody holds it
			}
			if o := ReadOwner(d); o.PID != os.Getpid() {
				return &LockedError{Dir: d, Owner: o}
			}
			return nil
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}
