package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Why fasthttp: the stock httputil.ReverseProxy reaches about 0.3× nginx
// here, losing to allocations and goroutine hand-offs per request;
// fasthttp's server and HostClient reuse request/response objects and
// buffers and keep upstream connections pooled, which is what a lean
// HTTP/1.1 forwarder needs. docs/gateway.md has the measurements.

var (
	hdrTraceparent = []byte("traceparent")
	hdrEdge        = []byte("X-Pave-Edge")
	hdrBaggage     = []byte("Baggage")
	hdrXFF         = []byte("X-Forwarded-For")
	hdrUpgrade     = []byte("Upgrade")
	hdrRespVersion = []byte("X-Pave-Version")
	hdrRespCluster = []byte("X-Pave-Cluster")
	// hdrGatewayError marks an error answer the gateway made itself (no
	// instance reached), as opposed to a service's own 5xx: an edge may
	// retry an idempotent request that got one in another cluster.
	hdrGatewayError = []byte("X-Pave-Gateway-Error")
	websocketToken  = []byte("websocket")
	hopHeaders      = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "TE", "Trailer"}
)

// requestKeys are what decides a request's version besides the weights.
type requestKeys struct {
	version []byte // the version override header
	sticky  []byte // the sticky key
	edge    bool   // forwarded by an edge gateway: no cluster split again
}

// errNoBackend explains a 503.
type errNoBackend struct{ msg string }

func (e errNoBackend) Error() string { return e.msg }

// choose picks the backend of one request.
func (s *service) choose(k requestKeys) (*backend, error) {
	if s.clusterSplit != nil && !k.edge {
		var i int
		if len(k.sticky) > 0 {
			i = s.clusterSplit.sticky(k.sticky)
		} else {
			i = s.clusterSplit.next()
		}
		if i < 0 {
			return nil, errNoBackend{"service " + s.name + ": every cluster weight is 0"}
		}
		if c := s.clusters[i]; !c.local {
			return c, nil
		}
	}
	if len(k.version) > 0 {
		b := s.byVersion[string(k.version)]
		if b == nil || len(b.eps) == 0 {
			return nil, errNoBackend{fmt.Sprintf("service %s: version %q asked for by header has no ready instances", s.name, k.version)}
		}
		return b, nil
	}
	var i int
	if len(k.sticky) > 0 {
		i = s.split.sticky(k.sticky)
	} else {
		i = s.split.next()
	}
	if i < 0 {
		return nil, errNoBackend{"service " + s.name + ": no version with ready instances and a weight above 0"}
	}
	return s.versions[i], nil
}

func (g *Gateway) keysFast(h *fasthttp.RequestHeader) requestKeys {
	k := requestKeys{version: h.PeekBytes(g.versionHeader), edge: len(h.PeekBytes(hdrEdge)) > 0}
	if len(g.stickyHeader) > 0 {
		k.sticky = h.PeekBytes(g.stickyHeader)
	}
	if len(k.sticky) == 0 && len(g.stickyCookie) > 0 {
		k.sticky = h.CookieBytes(g.stickyCookie)
	}
	return k
}

// hasHopHeader scans the headers once; deleting each hop-by-hop header
// unconditionally would scan them once per name on every request.
func hasHopHeader(h *fasthttp.RequestHeader) bool {
	for k := range h.All() {
		for _, hop := range hopHeaders {
			if len(k) == len(hop) && bytes.EqualFold(k, []byte(hop)) {
				return true
			}
		}
	}
	return false
}

func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// isDialFailure reports an error before any byte reached the upstream, so
// a retry can never repeat a side effect.
func isDialFailure(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, syscall.ECONNREFUSED)
}

// isConnFailure reports a broken connection (as opposed to a slow
// upstream: timeouts are never retried).
func isConnFailure(err error) bool {
	return isDialFailure(err) || errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (g *Gateway) succeeded(u *upstream, status int) {
	if status >= 500 {
		g.failed(u)
		return
	}
	if u.fails.Load() != 0 {
		u.fails.Store(0)
	}
	if u.ejections.Load() != 0 {
		u.ejections.Store(0)
	}
}

// failed counts a consecutive failure and ejects the endpoint for a while
// when there are too many (passive outlier detection).
func (g *Gateway) failed(u *upstream) {
	if int(u.fails.Add(1)) < g.opts.EjectAfter {
		return
	}
	u.fails.Store(0)
	n := u.ejections.Add(1)
	if n > 4 {
		n = 4
	}
	d := g.opts.EjectFor << (n - 1)
	u.ejectedUntil.Store(time.Now().Add(d).UnixNano())
	g.opts.Log.Warn("gateway: endpoint ejected", "endpoint", u.addr, "for", d)
}

// handle serves one HTTP/1.x request.
func (g *Gateway) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	req, resp := &ctx.Request, &ctx.Response
	t := g.table.Load()
	s, route := t.match(req.Header.Host(), ctx.Path(), g.hostSuffix)
	if s == nil {
		ctx.Error("pave gateway: no service for host "+string(req.Header.Host())+"; reach a service with Host SERVICE"+g.opts.HostSuffix+" or add a route\n", fasthttp.StatusNotFound)
		return
	}
	b, err := s.choose(g.keysFast(&req.Header))
	if err != nil {
		ctx.Error("pave gateway: "+err.Error()+"\n", fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, []byte("no-backend"))
		g.observe(s, nil, route, ctx, 0, start, nil)
		return
	}

	var tc traceContext
	tc.fromTraceparent(req.Header.PeekBytes(hdrTraceparent))
	var buf [64]byte
	req.Header.SetBytesKV(hdrTraceparent, tc.appendTraceparent(buf[:0]))
	if b.cluster != "" {
		req.Header.SetBytesKV(hdrEdge, g.edgeValue)
	}
	if ip, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		xff := buf[:0]
		if prev := req.Header.PeekBytes(hdrXFF); len(prev) > 0 {
			xff = append(append(xff, prev...), ", "...)
		}
		req.Header.SetBytesKV(hdrXFF, ip.Unmap().AppendTo(xff))
	}

	if req.Header.ConnectionUpgrade() && bytes.EqualFold(req.Header.PeekBytes(hdrUpgrade), websocketToken) {
		g.upgrade(ctx, s, b, route, start, &tc)
		return
	}
	if hasHopHeader(&req.Header) {
		for _, h := range hopHeaders {
			req.Header.Del(h)
		}
	}

	idempotent := isIdempotent(req.Header.Method())
	now := start.UnixNano()
	status := 0
	for attempt := 0; attempt <= g.opts.Retries; attempt++ {
		if b.cluster != "" && !b.healthy(now) {
			// At the edge a cluster whose gateways are all ejected is
			// skipped until the fleet moves its weight away.
			if alt := s.elsewhere(b, now); alt != nil {
				b = alt
			}
		}
		u := b.next(now)
		if u == nil {
			err = errNoBackend{"no ready instance"}
			break
		}
		err = u.hc.Do(req, resp)
		if err == nil {
			status = resp.StatusCode()
			g.succeeded(u, status)
			// At the edge, a cluster whose gateway reached no instance
			// (all gone, or killed mid-request) answers with a marked
			// 502/503; an idempotent request then gets another cluster.
			if b.cluster != "" && idempotent && attempt < g.opts.Retries && (status == 502 || status == 503) &&
				len(resp.Header.PeekBytes(hdrGatewayError)) > 0 {
				if alt := s.elsewhere(b, now); alt != nil {
					b = alt
					resp.Reset()
					continue
				}
			}
			break
		}
		g.failed(u)
		resp.Reset()
		if !(isDialFailure(err) || idempotent && isConnFailure(err)) {
			break
		}
		if b.cluster != "" {
			if alt := s.elsewhere(b, now); alt != nil {
				b = alt
			}
		}
	}
	if err != nil {
		code := fasthttp.StatusBadGateway
		if errors.Is(err, fasthttp.ErrTimeout) {
			code = fasthttp.StatusGatewayTimeout
		}
		ctx.Error(fmt.Sprintf("pave gateway: service %s version %s: %v\n", s.name, b.name, err), code)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, []byte("upstream"))
	} else if b.cluster != "" {
		// The cluster's gateway named the version; the edge adds where.
		resp.Header.SetBytesKV(hdrRespCluster, []byte(b.cluster))
	} else {
		resp.Header.SetBytesKV(hdrRespVersion, []byte(b.name))
	}
	g.observe(s, b, route, ctx, status, start, &tc)
}

// observe records statistics and the access record of one request.
func (g *Gateway) observe(s *service, b *backend, route []byte, ctx *fasthttp.RequestCtx, status int, start time.Time, tc *traceContext) {
	d := time.Since(start)
	ms := float64(d) / float64(time.Millisecond)
	if b != nil {
		b.stats.observe(route, status, ms)
	}
	if g.accessCh == nil {
		return
	}
	r := &AccessRecord{
		Time: start.UTC(), Service: s.name, Method: string(ctx.Method()), Route: string(route),
		Status: status, DurationMS: ms, Bytes: len(ctx.Response.Body()),
		Caller:     callerOf(ctx.Request.Header.PeekBytes(hdrBaggage), ctx.Request.Header.PeekBytes(g.callerHeader)),
		MerchantID: boundField(ctx.Request.Header.PeekBytes(g.merchantHeader)),
		Cluster:    g.opts.Cluster, Datacenter: g.opts.Datacenter,
	}
	if status == 0 {
		r.Status = ctx.Response.StatusCode()
	}
	if b != nil {
		r.Version = b.name
	}
	if tc != nil {
		r.TraceID, r.SpanID = string(tc.traceID[:]), string(tc.spanID[:])
	}
	g.logAccess(r)
}

func (g *Gateway) logAccess(r *AccessRecord) {
	select {
	case g.accessCh <- r:
	default:
		g.accessOverflow(r)
	}
}

// upgrade passes a WebSocket (or any Connection: Upgrade) request through:
// it forwards the request on a fresh upstream connection, then copies
// bytes both ways until either side closes.
func (g *Gateway) upgrade(ctx *fasthttp.RequestCtx, s *service, b *backend, route []byte, start time.Time, tc *traceContext) {
	u := b.next(start.UnixNano())
	if u == nil {
		ctx.Error("pave gateway: no ready instance\n", fasthttp.StatusServiceUnavailable)
		return
	}
	up, err := net.DialTimeout("tcp", u.addr, g.opts.DialTimeout)
	if err != nil {
		g.failed(u)
		ctx.Error(fmt.Sprintf("pave gateway: service %s version %s: %v\n", s.name, b.name, err), fasthttp.StatusBadGateway)
		g.observe(s, b, route, ctx, 0, start, tc)
		return
	}
	bw := bufio.NewWriter(up)
	if err := ctx.Request.Write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		up.Close()
		ctx.Error("pave gateway: upgrade: "+err.Error()+"\n", fasthttp.StatusBadGateway)
		g.observe(s, b, route, ctx, 0, start, tc)
		return
	}
	g.observe(s, b, route, ctx, fasthttp.StatusSwitchingProtocols, start, tc)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() {
			_, _ = io.Copy(up, client)
			if tcp, ok := up.(*net.TCPConn); ok {
				_ = tcp.CloseWrite()
			}
			done <- struct{}{}
		}()
		_, _ = io.Copy(client, up)
		_ = client.Close()
		<-done
	})
}
