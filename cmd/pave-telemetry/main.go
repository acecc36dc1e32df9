// Command pave-telemetry runs Pave's embedded telemetry store on its own:
// the same store, OTLP and JSON-lines intake and query API as `pave up`,
// in a binary that links nothing of the control plane, for a telemetry
// machine apart from the control plane or a node that only stores logs
// and spans. It starts at about a third of the pave binary's memory.
//
//	go install github.com/pave-platform/pave/cmd/pave-telemetry@latest
//	pave-telemetry --data-dir /var/lib/pave-telemetry --addr 127.0.0.1:4318
//	pave logs --server http://127.0.0.1:4318 --service orders
//
// See docs/telemetry.md ("Running the store on its own").
package main

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/certs"
	"github.com/pave-platform/pave/internal/frontdoor"
	"github.com/pave-platform/pave/internal/netaddr"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/httpapi"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pave-telemetry:", err)
		os.Exit(1)
	}
}

// config is the command line, each flag with a PAVE_TELEMETRY_* variable.
type config struct {
	dataDir       string
	addr          string
	grpcAddr      string
	coldStore     string
	coldAfter     time.Duration
	maintainEvery time.Duration
	tokenFile     string
	allowedHosts  []string
	tlsCert       string
	tlsKey        string
	tlsClientCA   string
	insecureHTTP  bool
	logLevel      string
	pprof         bool
	noNeedles     bool
}

func parse(args []string, stderr *os.File) (config, error) {
	var c config
	fl := flag.NewFlagSet("pave-telemetry", flag.ContinueOnError)
	fl.SetOutput(stderr)
	env := func(name, def string) string {
		if v, ok := os.LookupEnv("PAVE_TELEMETRY_" + name); ok {
			return v
		}
		return def
	}
	fl.StringVar(&c.dataDir, "data-dir", env("DATA_DIR", "pave-telemetry-data"), "directory of the store (WAL, blocks, cold cache); env PAVE_TELEMETRY_DATA_DIR")
	fl.StringVar(&c.addr, "addr", env("ADDR", "127.0.0.1:4318"), "HTTP address of the OTLP/JSON-lines intake and the query API; env PAVE_TELEMETRY_ADDR")
	fl.StringVar(&c.grpcAddr, "otlp-grpc-addr", env("OTLP_GRPC_ADDR", ""), "OTLP/gRPC address (off when empty); env PAVE_TELEMETRY_OTLP_GRPC_ADDR")
	fl.StringVar(&c.coldStore, "cold-store", env("COLD_STORE", ""), "where cold partitions go: a directory or s3://bucket/prefix?endpoint=… (as pave up's --telemetry-cold-store; default DATA_DIR/cold); env PAVE_TELEMETRY_COLD_STORE")
	coldAfter := fl.String("cold-after", env("COLD_AFTER", "24h"), "partitions older than this move to the cold store; 'never' keeps them local; env PAVE_TELEMETRY_COLD_AFTER")
	maintain := fl.String("maintain-every", env("MAINTAIN_EVERY", "1m"), "how often compaction, retention and cold moves run; 'never' runs them only on POST /api/v1/telemetry/maintain; env PAVE_TELEMETRY_MAINTAIN_EVERY")
	fl.StringVar(&c.tokenFile, "token-file", env("TOKEN_FILE", ""), "file holding the bearer token every request from another machine must send (loopback needs none); required when --addr is not loopback; env PAVE_TELEMETRY_TOKEN_FILE")
	hosts := fl.String("allowed-hosts", env("ALLOWED_HOSTS", ""), "names (comma-separated) clients may use for this server in the Host header besides localhost and the listen address, e.g. telemetry.internal; '*' allows any (not advised: it lets a DNS-rebinding page read the store); env PAVE_TELEMETRY_ALLOWED_HOSTS")
	fl.StringVar(&c.tlsCert, "tls-cert", env("TLS_CERT", ""), "certificate (PEM) to serve HTTPS and OTLP/gRPC over TLS with, reloaded when it changes; required off loopback unless --insecure-http; env PAVE_TELEMETRY_TLS_CERT")
	fl.StringVar(&c.tlsKey, "tls-key", env("TLS_KEY", ""), "private key (PEM) of --tls-cert; env PAVE_TELEMETRY_TLS_KEY")
	fl.StringVar(&c.tlsClientCA, "tls-client-ca", env("TLS_CLIENT_CA", ""), "CA bundle (PEM): with it, clients must present a certificate it signed (mutual TLS); env PAVE_TELEMETRY_TLS_CLIENT_CA")
	fl.BoolVar(&c.insecureHTTP, "insecure-http", env("INSECURE_HTTP", "") == "true", "allow plain HTTP off loopback (the token and every log line cross the network in clear); env PAVE_TELEMETRY_INSECURE_HTTP=true")
	fl.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error; env PAVE_TELEMETRY_LOG_LEVEL")
	fl.BoolVar(&c.pprof, "pprof", env("PPROF", "") == "true", "serve Go's profiles at /debug/pprof/ (guarded like the API); env PAVE_TELEMETRY_PPROF=true")
	needlesEnv, err := strconv.ParseBool(env("NEEDLE_FILES", "true"))
	if err != nil {
		return c, fmt.Errorf("PAVE_TELEMETRY_NEEDLE_FILES=%q: want true or false", env("NEEDLE_FILES", ""))
	}
	needles := fl.Bool("needle-files", needlesEnv, "keep each cold block's rarest lines (at most 1 in 256) on local disk, so a search for a rare phrase reads no cold block from the cold store; false reads every cold block from the cold store and removes the files; env PAVE_TELEMETRY_NEEDLE_FILES=false")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	if fl.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: pave-telemetry takes only flags (--help lists them)", fl.Arg(0))
	}
	c.noNeedles = !*needles
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.allowedHosts = append(c.allowedHosts, h)
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return c, fmt.Errorf("--tls-cert and --tls-key go together: give both (or neither for plain HTTP on loopback)")
	}
	if c.tlsClientCA != "" && c.tlsCert == "" {
		return c, fmt.Errorf("--tls-client-ca needs --tls-cert and --tls-key")
	}
	if c.coldAfter, err = durationOrNever("--cold-after", *coldAfter); err != nil {
		return c, err
	}
	if c.maintainEvery, err = durationOrNever("--maintain-every", *maintain); err != nil {
		return c, err
	}
	return c, nil
}

// durationOrNever reads a positive duration, or "never" (-1 for the store).
func durationOrNever(flag, s string) (time.Duration, error) {
	if s == "never" {
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s %q: want a positive duration such as 24h or 30m, or never", flag, s)
	}
	return d, nil
}

func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// readToken reads the token file; a token must be long enough not to be
// guessed.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("--token-file %s: the token has %d characters, want at least 16 (e.g. openssl rand -hex 32 > %s)", path, len(tok), path)
	}
	return tok, nil
}

// guard lets requests from this machine pass and asks others for the
// token of tokenFile (none passes without one): the intake's rule for
// OTLP from other machines, applied to every route.
func guard(tokenFile string, log *slog.Logger) (*telemetry.IngestAuth, error) {
	g := &telemetry.IngestAuth{Rate: 1000, Log: log,
		Missing: "a request from another machine needs the token of pave-telemetry's --token-file, sent as `Authorization: Bearer TOKEN`",
		Verify: func(context.Context, string) (string, string, bool) {
			return "", "no --token-file is set: only this machine may call pave-telemetry", false
		}}
	if tokenFile == "" {
		return g, nil
	}
	want, err := readToken(tokenFile)
	if err != nil {
		return nil, err
	}
	g.Verify = func(_ context.Context, got string) (string, string, bool) {
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return "", "invalid token", false
		}
		return "token", "", true
	}
	return g, nil
}

func run(ctx context.Context, args []string, stdout, stderr *os.File) error {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	lvl, err := logLevel(c.logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	g, err := guard(c.tokenFile, log)
	if err != nil {
		return err
	}
	hosts := c.allowedHosts
	for _, a := range []string{c.addr, c.grpcAddr} {
		if a == "" || netaddr.IsLoopback(a) {
			continue
		}
		if c.tokenFile == "" {
			return fmt.Errorf("%s is not a loopback address: set --token-file so that other machines must authenticate", a)
		}
		if c.tlsCert == "" && !c.insecureHTTP {
			return fmt.Errorf("%s is not a loopback address: without TLS the token and every log line would cross the network in clear; give --tls-cert and --tls-key, or accept that with --insecure-http", a)
		}
		if c.tlsCert == "" {
			log.Warn("INSECURE: serving plain HTTP off loopback (--insecure-http): the token and the logs cross the network in clear", "addr", a)
		}
		// A listener bound to one address also answers to that address.
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
				hosts = append(hosts, ip.String())
			}
		}
	}
	var tc *tls.Config
	if c.tlsCert != "" {
		if tc, err = certs.Server(c.tlsCert, c.tlsKey, c.tlsClientCA, "--tls-cert/--tls-key", "--tls-client-ca"); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var blob telemetry.Blob = telemetry.DirBlob{Root: filepath.Join(c.dataDir, "cold")}
	if c.coldStore != "" {
		if blob, err = telemetry.OpenColdStore(ctx, c.coldStore); err != nil {
			return fmt.Errorf("--cold-store: %w", err)
		}
	}
	st, err := telemetry.Open(ctx, telemetry.Options{Dir: c.dataDir, Blob: blob, ColdAfter: c.coldAfter, MaintainEvery: c.maintainEvery, NoNeedles: c.noNeedles, Log: log})
	if err != nil {
		return err
	}
	defer st.Close()

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{Handler: frontdoor.Guard(frontdoor.NewHosts(hosts), "--allowed-hosts", log, g.Wrap(mux(st, log, c.pprof))), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if c.grpcAddr != "" {
		gln, err := net.Listen("tcp", c.grpcAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("--otlp-grpc-addr: %w", err)
		}
		if tc != nil {
			gln = tls.NewListener(gln, tc)
		}
		gi := telemetry.NewGRPCIntake(st, telemetry.Limits{}, log)
		gi.SetAuth(g)
		go func() { errc <- gi.Serve(ctx, gln) }()
	}
	// The address first on stdout, so that a script (or a test) that asked
	// for port 0 learns the port.
	fmt.Fprintln(stdout, ln.Addr().String())
	log.Info("pave-telemetry serving", "addr", ln.Addr().String(), "otlp_grpc", c.grpcAddr, "data_dir", c.dataDir, "cold_store", blob)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// mux is every route: the intake, the query API, flush and maintenance
// on request, health and, with --pprof, Go's profiles.
func mux(st *telemetry.Embedded, log *slog.Logger, pprof bool) *http.ServeMux {
	m := http.NewServeMux()
	intake := telemetry.NewIntake(st, telemetry.Limits{}, log)
	for _, p := range []string{"POST /v1/logs", "POST /v1/traces", "POST /v1/jsonlines", "POST /insert/jsonline"} {
		m.Handle(p, intake)
	}
	httpapi.API{Store: st, Stats: st.Stats}.Register(m)
	// Flush writes the memory table into blocks (what is acknowledged is
	// already durable in the WAL); maintain runs compaction, retention and
	// cold moves now instead of at the next --maintain-every.
	m.HandleFunc("POST /api/v1/telemetry/flush", func(w http.ResponseWriter, r *http.Request) {
		answer(w, st.Flush(r.Context()))
	})
	m.HandleFunc("POST /api/v1/telemetry/maintain", func(w http.ResponseWriter, r *http.Request) {
		answer(w, errors.Join(st.Flush(r.Context()), st.Maintain(r.Context())))
	})
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if pprof {
		m.HandleFunc("GET /debug/pprof/", httppprof.Index)
		m.HandleFunc("GET /debug/pprof/profile", httppprof.Profile)
	}
	return m
}

func answer(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintln(w, `{"ok":true}`)
}
