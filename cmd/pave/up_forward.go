package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/leader"
)

// leaderOnlyRoutes are the API routes answered by the components that
// run on the leader only (alerting, runner pools): their state is the
// running component's (the rules manager's alerts, the embedded
// Alertmanager's silences and outbox, the runner controller's pools and
// queue), so a standby forwards them to the leader rather than answer
// from a component that is not running, or take a write the leader
// would not see.
var leaderOnlyRoutes = []string{
	"/api/v1/rules", "/api/v1/alerts", "/api/v1/alerting/",
	"/api/v1/runnerpools", "/hooks/github",
}

func leaderOnly(path string) bool {
	for _, p := range leaderOnlyRoutes {
		if path == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// forwardedHeader marks a request a standby forwarded, so a replica that
// is not leading either (the lease moved meanwhile) answers 503 rather
// than forwarding it again.
const forwardedHeader = "Pave-Forwarded-By"

// forwardToLeader wraps the API: on a standby, the leader-only routes go
// to the leader named in the lease (its API address), with the caller's
// headers (its token: every replica reads the same tokens), as Vault's
// and Nomad's standbys forward to their leader. Everything else, and
// every route on the leader, is served here.
func forwardToLeader(next http.Handler, el *leader.Elector, cfg config.Config, log *slog.Logger) http.Handler {
	scheme := "http"
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLSCert != "" {
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: replicaRoots(cfg.TLSCert)}
	}
	transport.ResponseHeaderTimeout = 30 * time.Second
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !leaderOnly(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if _, leading := el.Leading(); leading {
			next.ServeHTTP(w, r)
			return
		}
		// The front door first: the leader would see its own Host, not
		// the one this replica was asked under (DNS rebinding).
		if front, ok := next.(interface {
			AdmitFront(http.ResponseWriter, *http.Request) bool
		}); ok && !front.AdmitFront(w, r) {
			return
		}
		if by := r.Header.Get(forwardedHeader); by != "" {
			unavailable(w, fmt.Sprintf("forwarded by replica %s, but this replica does not lead either (the leadership is changing): retry", by))
			return
		}
		l, err := el.Lease(r.Context())
		if err != nil || !l.Live() || l.Note == "" {
			unavailable(w, "no replica leads the control plane at the moment (the lease is being taken over): retry in a few seconds")
			return
		}
		target := &url.URL{Scheme: scheme, Host: l.Note}
		p := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.SetXForwarded()
				pr.Out.Header.Set(forwardedHeader, el.ID())
			},
			Transport: transport,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				log.Warn("forwarding to the leader", "leader", l.Holder, "address", l.Note, "path", r.URL.Path, "err", err)
				unavailable(w, fmt.Sprintf("the leader %s at %s did not answer: %v; retry", l.Holder, l.Note, err))
			},
		}
		w.Header().Set("Pave-Served-By", l.Holder)
		p.ServeHTTP(w, r)
	})
}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "2")
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// replicaRoots trusts the system's CAs and the certificates of this
// replica's own tls-cert file (replicas usually share a certificate, or
// its chain), to verify the leader when forwarding to it.
func replicaRoots(certFile string) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return pool
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return pool
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			pool.AddCert(c)
		}
	}
}

// apiHandler is the API as a replica serves it: with an elected leader
// (ctx from startLeader), the leader-only routes forwarded from a standby.
func apiHandler(ctx context.Context, srv http.Handler, cfg config.Config, log *slog.Logger) http.Handler {
	el, ok := leader.FromContext(ctx)
	if !ok {
		return srv
	}
	return forwardToLeader(srv, el, cfg, log.With("component", "forward"))
}
