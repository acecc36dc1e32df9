// Package pgtest runs a throwaway PostgreSQL cluster (Debian's
// `postgresql`, installed by scripts/deps.sh) in a temporary directory, for
// the state store's tests and the scale benchmark. Nothing is mocked: the
// cluster is the real server, started with initdb and postgres, and
// removed when it stops.
//
// PostgreSQL refuses to run as root. When the caller is root, the cluster
// runs as the `postgres` system user Debian's package creates (or nobody).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running PostgreSQL cluster.
type Server struct {
	Addr string // 127.0.0.1:port
	dir  string
	bin  string
	cred *syscall.Credential
	log  *os.File
	ca   string // the CA's certificate file, with Options.TLS

	mu     sync.Mutex
	cmd    *exec.Cmd
	waitCh chan error
	dbs    int
}

// Options tune the cluster.
type Options struct {
	// Durable keeps fsync on (the benchmark); tests turn it off, since a
	// killed process (not a lost machine) is what they simulate.
	Durable bool
	// TLS turns ssl on with a certificate signed by a CA made for the
	// cluster (CAFile), and accepts TCP connections over TLS only; the
	// URLs it hands out use sslmode=verify-full with that CA.
	TLS bool
}

// Binaries finds PostgreSQL's server binaries: $PAVE_POSTGRES_BIN, else
// the newest /usr/lib/postgresql/*/bin.
func Binaries() (string, error) {
	if d := os.Getenv("PAVE_POSTGRES_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) < version(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: install Debian's postgresql (scripts/deps.sh), or set PAVE_POSTGRES_BIN")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// Start initialises and starts a cluster on a free loopback port.
func Start(opts Options) (*Server, error) {
	bin, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pave-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin}
	if os.Getuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.log, err = os.Create(filepath.Join(dir, "server.log")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	initdb := s.command("initdb", "-D", s.data(), "-U", "pave", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	fsync := "off"
	if opts.Durable {
		fsync = "on"
	}
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = %s\nmax_connections = 200\nshared_buffers = 32MB\n", dir, fsync)
	if opts.TLS {
		if err := s.setUpTLS(); err != nil {
			s.cleanup()
			return nil, err
		}
		conf += "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
	}
	if err := os.WriteFile(filepath.Join(s.data(), "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
		s.cleanup()
		return nil, err
	}
	if s.cred != nil {
		_ = os.Chown(filepath.Join(s.data(), "postgresql.auto.conf"), int(s.cred.Uid), int(s.cred.Gid))
	}
	if err := s.Restart(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// New starts a cluster for one test (or benchmark), failing it (never
// skipping) when PostgreSQL is missing, and stops it when the test ends.
func New(t testing.TB) *Server { return NewWith(t, Options{}) }

// NewWith is New with options (a TLS cluster).
func NewWith(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// unprivileged names the user a root caller runs PostgreSQL as.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root, and neither the postgres nor the nobody user exists to run PostgreSQL as (initdb refuses root)")
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// Restart starts the server again after Stop or Kill, on the same port
// when it is still free (a new one otherwise: read Addr again).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: already running")
	}
	addr := s.Addr
	if addr == "" || !free(addr) {
		addr = freeAddr()
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := s.command("postgres", "-D", s.data(), "-p", port)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd, s.Addr = cmd, addr
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.cmd = nil
			b, _ := os.ReadFile(s.log.Name())
			return fmt.Errorf("postgres exited: %v\n%s", err, tail(b))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.url("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			s.waitCh = exited
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	s.cmd = nil
	return errors.New("postgres did not accept connections within 60s")
}

// Stop shuts the server down (fast mode: connections are closed).
func (s *Server) Stop() { s.signal(syscall.SIGINT) }

// Kill kills the server with SIGKILL, as a crash would.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.waitCh:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.waitCh
	}
	if sig == syscall.SIGKILL {
		// The postmaster's children outlive it for a moment; a restart
		// waits for them to notice (the data directory's lock file).
		time.Sleep(500 * time.Millisecond)
	}
	s.cmd = nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.dir)
}

func (s *Server) url(db string) string {
	if s.ca != "" {
		return "postgres://pave@" + s.Addr + "/" + db + "?sslmode=verify-full&sslrootcert=" + url.QueryEscape(s.ca)
	}
	return "postgres://pave@" + s.Addr + "/" + db + "?sslmode=disable"
}

// URL returns the address of the cluster's database "postgres".
func (s *Server) URL() string { return s.url("postgres") }

// NewDatabase creates an empty database and returns its URL, so tests
// sharing one cluster do not see each other's rows.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("pave_%d", s.dbs)
	s.mu.Unlock()
	c, err := pgx.Connect(ctx, s.URL())
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.url(name), nil
}

// Database is NewDatabase for a test.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	u, err := s.NewDatabase(context.Background())
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return u
}

// PID is the postmaster's process id (0 when stopped).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(b)
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

func free(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// freeAddr picks a loopback port below the ephemeral range, which the
// outgoing connections of processes running beside this one take from.
func freeAddr() string {
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		if free(addr) {
			return addr
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:5432"
	}
	defer ln.Close()
	return ln.Addr().String()
}
