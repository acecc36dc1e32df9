package runners

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pave-platform/pave/internal/state"
)

// openStore opens a state store in dir (a new one when dir is "").
func openStore(t testing.TB, dir string) *state.SQLite {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newQueue(t testing.TB) *Queue {
	t.Helper()
	q, err := OpenQueue(context.Background(), openStore(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func newController(t *testing.T) *Controller {
	q := newQueue(t)
	return NewController(q, q.store)
}
