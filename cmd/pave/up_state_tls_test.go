package main

import (
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/state/pgtest"
)

// pave up on a PostgreSQL that takes TLS connections only, with
// sslmode=verify-full and sslrootcert; under a wrong CA it stops at once,
// naming the setting and sslrootcert, never the password.
func TestUpStateStoreTLS(t *testing.T) {
	t.Parallel() // its own pave up, ports and directories; it mostly waits
	pg := pgtest.NewWith(t, pgtest.Options{TLS: true})
	url := pg.Database(t)
	up := startUp(t, t.TempDir(), "--state-store", url)
	st, err := controlPlane(t, up.api)
	if err != nil || !strings.Contains(st.StateStore, "sslmode=verify-full") {
		t.Fatalf("pave status: %+v %v", st, err)
	}

	other, err := pgtest.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(url, "postgres://pave@", "postgres://pave:hunter2@", 1)
	wrong = wrong[:strings.Index(wrong, "sslrootcert=")] + "sslrootcert=" + other
	out, err := pave(t, nil, "up", "--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--otlp-addr", freeAddr(t), "--gateway-addr", freeAddr(t), "--state-store", wrong)
	if err == nil || !strings.Contains(out, "setting state-store") || !strings.Contains(out, "sslrootcert") || !strings.Contains(out, "certificate signed by unknown authority") {
		t.Fatalf("want a failure naming the setting and sslrootcert, got %v:\n%s", err, out)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "pave is up") {
		t.Fatalf("the password shown, or pave up served:\n%s", out)
	}
}
