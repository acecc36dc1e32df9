package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/frontdoor"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/telemetry"
)

// security is what `pave up` decides about access before it serves: the
// local admin credential, the run roots, the Host names, and whether
// plain HTTP off loopback is allowed.
type security struct {
	tokenFile string
	localKey  []byte
	runRoots  server.RunRoots
	hosts     []string
}

func setUpSecurity(ctx context.Context, cfg config.Config, tokens auth.Tokens, api net.Addr, log *slog.Logger) (security, error) {
	var sec security
	if err := checkExposure(cfg, log); err != nil {
		return sec, err
	}
	var err error
	if sec.tokenFile, err = tokens.EnsureLocalAdmin(ctx, cfg.DataDir); err != nil {
		return sec, fmt.Errorf("setting data-dir: %w", err)
	}
	if sec.localKey, err = auth.EnsureLocalKey(cfg.DataDir); err != nil {
		return sec, fmt.Errorf("setting data-dir: %w", err)
	}
	roots := filepath.SplitList(cfg.RunRoots)
	if strings.TrimSpace(cfg.RunRoots) == "" {
		wd, err := os.Getwd()
		if err != nil {
			return sec, fmt.Errorf("setting run-roots: the working directory: %w", err)
		}
		roots = []string{wd, cfg.DataDir}
	}
	if sec.runRoots, err = server.NewRunRoots(roots); err != nil {
		return sec, fmt.Errorf("setting run-roots: %w (a list separated by %q of existing directories)", err, string(filepath.ListSeparator))
	}
	sec.hosts = append(sec.hosts, cfg.HTTPAllowedHosts...)
	// A listener bound to one address also answers to that address.
	if tcp, ok := api.(*net.TCPAddr); ok && !tcp.IP.IsUnspecified() && !tcp.IP.IsLoopback() {
		sec.hosts = append(sec.hosts, tcp.IP.String())
	}
	return sec, nil
}

// checkExposure refuses plain HTTP on a non-loopback address unless the
// operator said --insecure-http, and then warns at every start.
func checkExposure(cfg config.Config, log *slog.Logger) error {
	if cfg.TLSCert != "" {
		return nil
	}
	var exposed []string
	for _, b := range []struct{ name, addr string }{{"http-addr", cfg.HTTPAddr}, {"otlp-addr", cfg.OTLPAddr}, {"otlp-grpc-addr", cfg.OTLPGRPCAddr}} {
		if b.addr != "" && !config.IsLoopback(b.addr) {
			exposed = append(exposed, b.name+"="+b.addr)
		}
	}
	if len(exposed) == 0 {
		return nil
	}
	if !cfg.InsecureHTTP {
		return fmt.Errorf("%s: not loopback, and without TLS bearer tokens, kubeconfigs and telemetry would cross the network in clear; "+
			"give --tls-cert and --tls-key, or accept that with --insecure-http", strings.Join(exposed, ", "))
	}
	log.Warn("INSECURE: serving plain HTTP on a non-loopback address (--insecure-http): tokens and kubeconfigs cross the network in clear",
		"listeners", strings.Join(exposed, ", "))
	return nil
}

// Timeouts and limits of the listeners `pave up` serves HTTP on: a slow
// or silent client (slowloris) holds one connection for at most
// ReadHeaderTimeout / ReadTimeout, and never starves the others.
// Bodies are bounded by each handler (the API's front door: 4 MiB; the
// OTLP intake: its MaxBodyBytes).
type listenerTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultTimeouts = listenerTimeouts{
	readHeader: 10 * time.Second,
	read:       60 * time.Second,
	write:      5 * time.Minute, // answers of long queries; event streams lift it
	idle:       2 * time.Minute,
}

const maxHeaderBytes = 64 << 10

func newHTTPServer(h http.Handler) *http.Server { return newHTTPServerWith(h, defaultTimeouts) }

func newHTTPServerWith(h http.Handler, t listenerTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// ingestAuth is the OTLP receivers' guard off loopback: a token with the
// ingest (or admin) role, rate-limited per token by --otlp-rate.
func ingestAuth(cfg config.Config, tokens auth.Tokens, log *slog.Logger) *telemetry.IngestAuth {
	rate, _ := strconv.Atoi(cfg.OTLPRate) // checked by the setting
	return &telemetry.IngestAuth{
		Rate: float64(rate),
		Log:  log,
		Verify: func(ctx context.Context, token string) (string, string, bool) {
			tok, role, err := tokens.Verify(ctx, token)
			if err != nil {
				return "", "invalid token", false
			}
			if role != auth.RoleIngest && role != auth.RoleAdmin {
				return "", "token " + tok.ID + " has role " + role.String() + "; sending telemetry needs role ingest", false
			}
			return tok.ID, "", true
		},
	}
}

// guardOTLP guards the OTLP/HTTP intake. Off loopback every request needs
// an ingest token. On loopback, where the machine's services send without
// one, a web page must not be able to forge telemetry: a foreign Host (a
// DNS-rebinding page) gets 421 and a request a browser marks as sent by
// another site 403, as at the API's front door.
func guardOTLP(ln net.Listener, h http.Handler, a *telemetry.IngestAuth, allowedHosts []string, log *slog.Logger) http.Handler {
	if !isLoopbackAddr(ln.Addr()) {
		return a.Wrap(h)
	}
	return frontdoor.Guard(frontdoor.NewHosts(allowedHosts), "--http-allowed-hosts", log, h)
}
