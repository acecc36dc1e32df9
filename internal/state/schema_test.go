package state

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// A store written by a newer Pave is refused with both versions named,
// and the refusal writes nothing.
func TestNewerSchemaRefusedSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "release", "r", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99; INSERT INTO pave_schema (version, pave, applied) VALUES (99, 'v9.0.0', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenSQLite(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open a newer schema: %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{"schema version 99", "v9.0.0", "versions up to 2", path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	db, _ = sql.Open("sqlite", "file:"+path)
	defer db.Close()
	var v, n int
	db.QueryRow(`PRAGMA user_version`).Scan(&v)
	db.QueryRow(`SELECT count(*) FROM pave_schema`).Scan(&n)
	if v != 99 || n != 3 {
		t.Fatalf("the refusal wrote: user_version %d, %d schema rows", v, n)
	}
}

// A file of a Pave that kept no schema version (the tables, no
// user_version) migrates in place and keeps its rows.
func TestUnversionedSQLiteMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(sqliteMigrations[0] + `INSERT INTO objects VALUES ('release','r',4,'{}',0);`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Get(context.Background(), "release", "r")
	if err != nil || o.Version != 4 {
		t.Fatalf("old row: %v %+v", err, o)
	}
	if _, err := s.TryLease(context.Background(), "leader", "a", "", 1e9); err != nil {
		t.Fatalf("leases after migration: %v", err)
	}
}

func TestNewerSchemaRefusedPostgres(t *testing.T) {
	ctx := context.Background()
	url := postgresServer(t).Database(t)
	s, err := OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `INSERT INTO pave_schema (version, pave) VALUES (99, 'v9.0.0')`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		c.QueryRow(ctx, `SELECT count(*) FROM pave_schema`).Scan(&n)
		return n
	}
	before := count()
	_, err = OpenPostgres(ctx, url)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("open a newer schema: %v, want ErrNewerSchema", err)
	}
	for _, want := range []string{"schema version 99", "v9.0.0", "versions up to 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if after := count(); after != before {
		t.Fatalf("the refusal wrote schema rows: %d, was %d", after, before)
	}
}

// Replicas starting together migrate once.
func TestPostgresMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	url := postgresServer(t).Database(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := OpenPostgres(ctx, url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Unreachable and read-only servers: errors that say where and what.
func TestPostgresUnavailable(t *testing.T) {
	ctx := context.Background()
	_, err := OpenPostgres(ctx, "postgres://pave:secret@127.0.0.1:1/db?connect_timeout=2")
	if err == nil {
		t.Fatal("opened an unreachable store")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q: must name the server, never the password", err)
	}
	url := postgresServer(t).Database(t)
	s, err := OpenPostgres(ctx, url+"&options=-c%20default_transaction_read_only%3Don")
	if err == nil {
		err = s.Ping(ctx)
		s.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "is read-only") {
		t.Fatalf("read-only server: %v", err)
	}
}
