package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/pave-platform/pave/internal/stats"
)

// The proxy's behaviour lives here, once, and the three serving paths
// (the epoll loop for plain HTTP/1.1, the fasthttp server for everything
// else HTTP/1, the net/http server for h2c) only move bytes: which
// service and route a request is, which version serves it and whether the
// client may choose, when a failed attempt is retried and where, the
// forwarding headers, the error answers the gateway makes itself, and
// what the statistics and the access record count.

// requestIn is what a serving path reads of a request to route it.
type requestIn struct {
	host, path, method []byte
	version            []byte // the version header
	sticky             []byte // the sticky header
	cookie             []byte // the Cookie header (the sticky cookie is looked up only when needed)
	token              []byte // the tester credential header
	edge               bool   // X-Pave-Edge present
	addr               netip.Addr
	now                int64
}

// routing is the decision for one request.
type routing struct {
	s     *service
	route []byte // request-side route key: the split's key, the statistics' unless the service reports one
	b     *backend
	class trafficClass
	// pinHonoured: the version header was honoured; it is forwarded (an
	// edge's remote cluster applies it), else stripped.
	pinHonoured bool
	// ejectedTurn: the endpoint whose turn it was is ejected; the
	// version is charged an error for it (stats.StatusEjected).
	ejectedTurn bool
}

// route decides a request's service, route key and backend. On error the
// answer is the gateway's: 404 without a service (rt.s nil), else 503.
func (g *Gateway) route(t *table, in *requestIn) (rt routing, code int, err error) {
	s, fallback := t.match(in.host, in.path, g.hostSuffix)
	if s == nil {
		return rt, 404, errors.New("no service for host " + string(in.host) + "; reach a service with Host SERVICE" + g.opts.HostSuffix + " or add a route")
	}
	rt.s = s
	rt.route = s.requestRoute(in.method, in.path, fallback)
	k := requestKeys{route: rt.route, edge: in.edge}
	sticky := in.sticky
	if len(sticky) == 0 && len(g.stickyCookie) > 0 && len(in.cookie) > 0 {
		sticky = cookieValue(in.cookie, g.stickyCookie)
	}
	if (len(in.version) > 0 || len(sticky) > 0) && g.trust.allows(in.addr, in.token, in.now) {
		k.version, k.sticky = in.version, sticky
		rt.pinHonoured = len(in.version) > 0
	}
	rt.b, rt.class, err = s.choose(k)
	if err != nil {
		return rt, 503, err
	}
	return rt, 0, nil
}

// pick takes the endpoint of an attempt. The first attempt notes whether
// round-robin had to pass over an ejected endpoint: that request is
// charged to the version as an error, as if the ejected instance had
// served it, so ejecting a broken replica does not hide it from the
// judges.
func (g *Gateway) pick(rt *routing, attempt int, now int64) *upstream {
	b := rt.b
	if b.cluster != "" && !b.healthy(now) {
		// At the edge a cluster whose gateways are all ejected is skipped
		// until the fleet moves its weight away.
		if alt := rt.s.elsewhere(b, now); alt != nil {
			rt.b, b = alt, alt
		}
	}
	u, passedEjected := b.next(now)
	if attempt == 0 && b.cluster == "" {
		rt.ejectedTurn = passedEjected
	}
	return u
}

// retryAfterFailure says whether an attempt that failed with err (no
// answer) is tried again: a refused connection for every method (nothing
// was sent), a broken one only for idempotent methods, never a timeout,
// never once part of an answer reached the client. At the edge the retry
// goes to another cluster.
func (g *Gateway) retryAfterFailure(rt *routing, err error, dial, idempotent, started bool, attempt int, now int64) bool {
	if started || attempt >= g.opts.Retries || !(dial || idempotent && isConnFailure(err)) {
		return false
	}
	if rt.b.cluster != "" {
		if alt := rt.s.elsewhere(rt.b, now); alt != nil {
			rt.b = alt
		}
	}
	return true
}

// retryElsewhere says whether an answer is retried in another cluster: at
// the edge, a cluster whose gateway reached no instance (all gone, or
// killed mid-request) answers with a marked 502/503 (mark, the value of
// hdrGatewayError). An idempotent request then gets another cluster; any
// other only when the mark says none of its bytes reached an instance
// (unsentMark), since one killed mid-request may have acted on it.
func (g *Gateway) retryElsewhere(rt *routing, status int, mark []byte, idempotent bool, attempt int, now int64) bool {
	if rt.b.cluster == "" || attempt >= g.opts.Retries || (status != 502 && status != 503) || len(mark) == 0 {
		return false
	}
	if !idempotent && !unsentMark(mark) {
		return false
	}
	if alt := rt.s.elsewhere(rt.b, now); alt != nil {
		rt.b = alt
		return true
	}
	return false
}

// Markers of the gateway's own error answers (hdrGatewayError). An edge
// retries in another cluster any request whose answer says no byte of it
// reached an instance (no-backend, unsent), and an idempotent request
// whatever the mark; a client can tell the same from them (docs/gateway.md).
var (
	// markNoBackend: no instance to send it to (none ready, no version).
	markNoBackend = []byte("no-backend")
	// markUnsent: every attempt failed before a byte was sent (a refused
	// or timed-out connection): as if the request never left the client.
	markUnsent = []byte("unsent")
	// markUpstream: an instance may have received the request before it
	// failed (a connection broken mid-request, a timeout).
	markUpstream = []byte("upstream")
)

// unsentMark reports whether a hdrGatewayError value says the request
// reached no instance.
func unsentMark(v []byte) bool {
	return bytes.Equal(v, markNoBackend) || bytes.Equal(v, markUnsent)
}

// failureMark is the mark of a failure answer: upstream once some attempt
// may have sent bytes to an instance, else unsent.
func failureMark(sent bool) []byte {
	if sent {
		return markUpstream
	}
	return markUnsent
}

// failure is the gateway's answer to a request that reached no answer.
func failureAnswer(rt *routing, err error, timeout bool) (code int, body string) {
	code = 502
	if timeout {
		code = 504
	}
	return code, fmt.Sprintf("pave gateway: service %s version %s: %v\n", rt.s.name, rt.b.name, err)
}

// errorBody is the text of an answer the gateway makes itself.
func errorBody(err error) string { return "pave gateway: " + err.Error() + "\n" }

// appendForwardedFor appends the client to X-Forwarded-For: the previous
// value (if any), ", ", the client's address.
func appendForwardedFor(dst, prev []byte, client netip.Addr) []byte {
	if len(prev) > 0 {
		dst = append(append(dst, prev...), ", "...)
	}
	return client.Unmap().AppendTo(dst)
}

// outcome is what the statistics and the access record count of one
// request.
type outcome struct {
	status      int    // the answer's status (0: none)
	statsStatus int    // what the version's statistics count (0: failed)
	reported    []byte // the X-Pave-Route the service reported, if any
	bytes       int
	method      []byte
	caller      string
	merchant    string
	tc          *traceContext
}

// finish counts a request: in its version's statistics (by route
// template, in the judged split or apart) and in the access log.
func (g *Gateway) finish(rt *routing, start time.Time, o *outcome) {
	ms := float64(time.Since(start)) / float64(time.Millisecond)
	route := rt.route
	if rt.s != nil && o.reported != nil {
		route = rt.s.reportedRoute(o.reported, rt.route)
	}
	if rt.b != nil {
		st := o.statsStatus
		if rt.ejectedTurn && st > 0 && st < 500 {
			st = stats.StatusEjected
		}
		rt.b.stats.observe(route, st, ms, rt.class)
	}
	if g.accessCh == nil || rt.s == nil {
		return
	}
	r := &AccessRecord{
		Time: start.UTC(), Service: rt.s.name, Method: string(o.method), Route: string(route),
		Status: o.status, DurationMS: ms, Bytes: o.bytes, Caller: o.caller, MerchantID: o.merchant,
		Cluster: g.opts.Cluster, Datacenter: g.opts.Datacenter,
	}
	if rt.b != nil {
		r.Version = rt.b.name
		if o.tc != nil {
			r.TraceID, r.SpanID = string(o.tc.traceID[:]), string(o.tc.spanID[:])
		}
	}
	g.logAccess(r)
}
