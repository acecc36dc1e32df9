package telemetry

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// IngestAuth guards the OTLP receivers when they listen off loopback:
// every request from another machine needs a bearer token (as
// OpenTelemetry exporters send it, `Authorization: Bearer …`) with the
// ingest role, and each token gets its own rate limit. Requests from
// loopback (this machine's services) need none. Every refusal says why.
type IngestAuth struct {
	// Verify checks a token and returns its id; reason explains a
	// refusal (unknown token, wrong role).
	Verify func(ctx context.Context, token string) (id string, reason string, ok bool)
	// Rate is the requests per second each token may send (burst: 2×).
	Rate float64
	Log  *slog.Logger
	// Missing, when set, replaces the explanation given to a request
	// without a token (by default: how to get an ingest token from pave).
	Missing string

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// check returns "" when the request may pass, else why not, and whether
// it was the rate limit.
func (a *IngestAuth) check(ctx context.Context, remote, authorization string) (reason string, limited bool) {
	if isLoopbackRemote(remote) {
		return "", false
	}
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	if authorization == "" && a.Missing != "" {
		return "missing bearer token: " + a.Missing, false
	}
	if authorization == "" {
		return "missing bearer token: OTLP from another machine needs a token with the ingest role (`pave token create --role ingest`), sent as `Authorization: Bearer TOKEN` (OTEL_EXPORTER_OTLP_HEADERS)", false
	}
	if !ok {
		return "the Authorization header must be 'Bearer TOKEN'", false
	}
	id, why, ok := a.Verify(ctx, strings.TrimSpace(tok))
	if !ok {
		return why, false
	}
	if !a.allow(id, time.Now()) {
		return "rate limit of this token exceeded (" + strconv.FormatFloat(a.Rate, 'g', -1, 64) + " requests/s): slow down or batch more per request", true
	}
	return "", false
}

func (a *IngestAuth) allow(id string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.buckets == nil {
		a.buckets = map[string]*bucket{}
	}
	burst := 2 * a.Rate
	b := a.buckets[id]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		a.buckets[id] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*a.Rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func isLoopbackRemote(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Wrap guards an OTLP/HTTP handler: 401 with the reason, or 429 with
// Retry-After when the token's rate is exceeded.
func (a *IngestAuth) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reason, limited := a.check(r.Context(), r.RemoteAddr, r.Header.Get("Authorization"))
		if reason == "" {
			h.ServeHTTP(w, r)
			return
		}
		a.logRefusal(r.RemoteAddr, reason)
		if limited {
			w.Header().Set("Retry-After", "1")
			http.Error(w, reason, http.StatusTooManyRequests)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="pave-otlp"`)
		http.Error(w, reason, http.StatusUnauthorized)
	})
}

func (a *IngestAuth) logRefusal(remote, reason string) {
	if a.Log != nil {
		a.Log.Warn("otlp request refused", "remote", remote, "reason", reason)
	}
}

// unary is the gRPC form of Wrap: Unauthenticated or ResourceExhausted.
func (a *IngestAuth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	authz := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
	}
	reason, limited := a.check(ctx, remote, authz)
	if reason == "" {
		return handler(ctx, req)
	}
	a.logRefusal(remote, reason)
	if limited {
		return nil, status.Error(codes.ResourceExhausted, reason)
	}
	return nil, status.Error(codes.Unauthenticated, reason)
}

// Auth guards the gRPC intake (see IngestAuth); set before Serve.
func (g *GRPCIntake) SetAuth(a *IngestAuth) { g.auth = a }

// serverOptions are the gRPC listener's guards: a handshake deadline,
// idle connections closed, and the ingest check when set.
func (g *GRPCIntake) serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 2 * time.Minute, Time: time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second}),
	}
	if g.auth != nil {
		opts = append(opts, grpc.UnaryInterceptor(g.auth.unary))
	}
	return opts
}
