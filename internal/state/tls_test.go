package state_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/state/pgtest"
)

// The state store on a PostgreSQL that takes TLS connections only, with
// sslmode=verify-full and the CA that signed the server's certificate;
// and refused, with a clear error and no password, under a wrong CA.
func TestPostgresTLS(t *testing.T) {
	pg := pgtest.NewWith(t, pgtest.Options{TLS: true})
	url := pg.Database(t)
	if !strings.Contains(url, "sslmode=verify-full") || !strings.Contains(url, "sslrootcert=") {
		t.Fatalf("pgtest's TLS URL %q", url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := state.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatalf("open over TLS with verify-full: %v", err)
	}
	defer st.Close()
	if _, err := st.Put(ctx, "test", "tls", []byte(`{"over":"tls"}`), 0); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	o, err := st.Get(ctx, "test", "tls")
	if err != nil || string(o.Data) != `{"over":"tls"}` {
		t.Fatalf("read over TLS: %+v %v", o, err)
	}

	// The server's side of the same URL's connection: TLS.
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var ssl bool
	var version string
	if err := c.QueryRow(ctx, `SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&ssl, &version); err != nil || !ssl {
		t.Fatalf("pg_stat_ssl: ssl=%v %v", ssl, err)
	}
	c.Close(ctx)
	t.Logf("connected with %s", version)

	// The cluster accepts no plain TCP connection: the store connected
	// over TLS because it had to.
	plain := strings.Replace(url, "sslmode=verify-full", "sslmode=disable", 1)
	if _, err := state.OpenPostgres(ctx, plain); err == nil {
		t.Fatal("a plain-TCP connection was accepted: the test would not show TLS is used")
	}

	// A wrong CA: refused, naming sslrootcert, without the password.
	other, err := pgtest.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(url, "postgres://pave@", "postgres://pave:hunter2@", 1)
	wrong = wrong[:strings.Index(wrong, "sslrootcert=")] + "sslrootcert=" + other
	_, err = state.OpenPostgres(ctx, wrong)
	if err == nil {
		t.Fatal("verify-full with a CA that did not sign the server's certificate connected")
	}
	msg := err.Error()
	for _, want := range []string{"certificate", "sslrootcert", "postgres://pave:xxxxx@"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("the error shows the password: %s", msg)
	}
	t.Logf("wrong CA: %s", msg)

	// A CA file that is not there: refused before connecting, the file named.
	missing := wrong[:strings.Index(wrong, "sslrootcert=")] + "sslrootcert=/nonexistent/ca.pem"
	_, err = state.Open(ctx, missing, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a missing sslrootcert: %v", err)
	}
	t.Logf("missing CA: %s", err)
}
