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
	route   []byte // the request-side route key: each route is split on its own
	version []byte // the version override header, when honoured
	sticky  []byte // the sticky key, when honoured
	edge    bool   // forwarded by an edge gateway: no cluster split again
}

// errNoBackend explains a 503.
type errNoBackend struct{ msg string }

func (e errNoBackend) Error() string { return e.msg }

// choose picks the backend of one request and says how it was chosen:
// classJudged when by the weighted split, else by the client.
func (s *service) choose(k requestKeys) (*backend, trafficClass, error) {
	if s.clusterSplit != nil && !k.edge {
		var i int
		class := classJudged
		if len(k.sticky) > 0 {
			i = s.clusterSplit.sticky(k.sticky)
			class = classSticky
		} else {
			i = s.clusterSplit.next(k.route)
		}
		if i < 0 {
			return nil, class, errNoBackend{"service " + s.name + ": every cluster weight is 0"}
		}
		if c := s.clusters[i]; !c.local {
			return c, class, nil
		}
	}
	if len(k.version) > 0 {
		b := s.byVersion[string(k.version)]
		if b == nil || len(b.eps) == 0 {
			return nil, classPinned, errNoBackend{fmt.Sprintf("service %s: version %q asked for by header has no ready instances", s.name, k.version)}
		}
		return b, classPinned, nil
	}
	if len(k.sticky) > 0 {
		if i := s.split.sticky(k.sticky); i >= 0 {
			return s.versions[i], classSticky, nil
		}
	} else if i := s.split.next(k.route); i >= 0 {
		return s.versions[i], classJudged, nil
	}
	return nil, classJudged, errNoBackend{"service " + s.name + ": no version with ready instances and a weight above 0"}
}

// inFast reads what routes a request on the fasthttp path.
func (g *Gateway) inFast(ctx *fasthttp.RequestCtx, now int64) requestIn {
	h := &ctx.Request.Header
	in := requestIn{host: h.Host(), path: ctx.Path(), method: h.Method(), version: h.PeekBytes(g.versionHeader),
		token: h.PeekBytes(g.testerHeader), edge: len(h.PeekBytes(hdrEdge)) > 0, now: now}
	if len(g.stickyHeader) > 0 {
		in.sticky = h.PeekBytes(g.stickyHeader)
	}
	if len(in.sticky) == 0 && len(g.stickyCookie) > 0 {
		in.sticky = h.CookieBytes(g.stickyCookie)
	}
	if ip, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		in.addr = ip.Unmap()
	}
	return in
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
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, errStaleConn)
}

// errConnClosed: the upstream closed the connection before the answer
// was complete (the event loop's word for it).
var errConnClosed = errors.New("the upstream closed the connection")

// isConnFailure reports a broken connection (as opposed to a slow
// upstream: timeouts are never retried).
func isConnFailure(err error) bool {
	return isDialFailure(err) || errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, errConnClosed) || errors.Is(err, io.EOF) ||
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
	now := start.UnixNano()
	req, resp := &ctx.Request, &ctx.Response
	in := g.inFast(ctx, now)
	rt, code, err := g.route(g.table.Load(), &in)
	o := outcome{method: req.Header.Method()}
	if g.accessCh != nil {
		o.caller = callerOf(req.Header.PeekBytes(hdrBaggage), req.Header.PeekBytes(g.callerHeader))
		o.merchant = boundField(req.Header.PeekBytes(g.merchantHeader))
		o.method = append([]byte(nil), o.method...)
	}
	if err != nil {
		ctx.Error(errorBody(err), code)
		if rt.s == nil {
			return
		}
		ctx.Response.Header.SetBytesKV(hdrGatewayError, markNoBackend)
		o.status, o.bytes = code, len(ctx.Response.Body())
		g.finish(&rt, start, &o)
		return
	}

	var tc traceContext
	tc.fromTraceparent(req.Header.PeekBytes(hdrTraceparent))
	o.tc = &tc
	var buf [64]byte
	req.Header.SetBytesKV(hdrTraceparent, tc.appendTraceparent(buf[:0]))
	if !rt.pinHonoured && len(in.version) > 0 {
		req.Header.DelBytes(g.versionHeader)
	}
	if rt.b.cluster != "" {
		req.Header.SetBytesKV(hdrEdge, g.edgeValue)
	} else if len(in.token) > 0 {
		// A tester credential goes no further than the gateway (an edge
		// passes it on to the cluster's gateway, which checks it again).
		req.Header.DelBytes(g.testerHeader)
	}
	if in.addr.IsValid() {
		req.Header.SetBytesKV(hdrXFF, appendForwardedFor(buf[:0], req.Header.PeekBytes(hdrXFF), in.addr))
	}

	if req.Header.ConnectionUpgrade() && bytes.EqualFold(req.Header.PeekBytes(hdrUpgrade), websocketToken) {
		g.upgrade(ctx, &rt, start, &o)
		return
	}
	if hasHopHeader(&req.Header) {
		for _, h := range hopHeaders {
			req.Header.Del(h)
		}
	}
	if m := g.mirrorFor(&rt, req.Header.Method(), in.path, len(req.Body())); m != nil {
		hdr := req.Header.Header()
		if req.Header.ContentLength() != len(req.Body()) {
			// A chunked body was read whole: the copy carries it with
			// its length, not as chunks.
			var h fasthttp.RequestHeader
			req.Header.CopyTo(&h)
			h.SetContentLength(len(req.Body()))
			hdr = h.Header()
		}
		raw := make([]byte, 0, len(hdr)+len(req.Body()))
		m.enqueue(req.Header.Method(), rt.route, in.path, &tc, append(append(raw, hdr...), req.Body()...))
	}

	idempotent := isIdempotent(req.Header.Method())
	status := 0
	sent := false // some attempt may have reached an instance
	for attempt := 0; ; attempt++ {
		u := g.pick(&rt, attempt, now)
		if u == nil {
			err = errNoBackend{"no ready instance"}
			break
		}
		err = u.hc.Do(req, resp)
		if err == nil {
			status = resp.StatusCode()
			g.succeeded(u, status)
			if mark := resp.Header.PeekBytes(hdrGatewayError); g.retryElsewhere(&rt, status, mark, idempotent, attempt, now) {
				sent = sent || !unsentMark(mark)
				resp.Reset()
				continue
			}
			break
		}
		g.failed(u)
		resp.Reset()
		dial := isDialFailure(err)
		sent = sent || !dial
		if !g.retryAfterFailure(&rt, err, dial, idempotent, false, attempt, now) {
			break
		}
	}
	if err != nil {
		code, body := failureAnswer(&rt, err, errors.Is(err, fasthttp.ErrTimeout))
		ctx.Error(body, code)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, failureMark(sent))
		o.status = code
	} else {
		o.status = status
		if rep := resp.Header.PeekBytes(hdrRoute); len(rep) > 0 {
			o.reported = append(buf[:0], rep...)
			resp.Header.DelBytes(hdrRoute)
		}
		if rt.b.cluster != "" {
			// The cluster's gateway named the version; the edge adds where.
			resp.Header.SetBytesKV(hdrRespCluster, []byte(rt.b.cluster))
		} else {
			resp.Header.SetBytesKV(hdrRespVersion, []byte(rt.b.name))
			resp.Header.DelBytes(hdrGatewayError) // only a gateway marks its answers
		}
	}
	o.statsStatus = status
	o.bytes = len(resp.Body())
	g.finish(&rt, start, &o)
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
func (g *Gateway) upgrade(ctx *fasthttp.RequestCtx, rt *routing, start time.Time, o *outcome) {
	u := g.pick(rt, 0, start.UnixNano())
	if u == nil {
		ctx.Error(errorBody(errNoBackend{"no ready instance"}), fasthttp.StatusServiceUnavailable)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, markNoBackend)
		o.status = fasthttp.StatusServiceUnavailable
		g.finish(rt, start, o)
		return
	}
	up, err := net.DialTimeout("tcp", u.addr, g.opts.DialTimeout)
	if err != nil {
		g.failed(u)
		code, body := failureAnswer(rt, err, false)
		ctx.Error(body, code)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, markUnsent)
		o.status = code
		g.finish(rt, start, o)
		return
	}
	bw := bufio.NewWriter(up)
	if err := ctx.Request.Write(bw); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		up.Close()
		code, body := failureAnswer(rt, err, false)
		ctx.Error(body, code)
		ctx.Response.Header.SetBytesKV(hdrGatewayError, markUpstream)
		o.status = code
		g.finish(rt, start, o)
		return
	}
	o.status, o.statsStatus = fasthttp.StatusSwitchingProtocols, fasthttp.StatusSwitchingProtocols
	g.finish(rt, start, o)
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
