//go:build linux

// Serving on the event loop: a request from its complete head to its
// answer, with the decisions (route, version, retries, errors, what is
// counted) taken by the gateway's core (core.go).

package gateway

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// request is the client's request in flight.
type request struct {
	start      time.Time
	rt         routing
	u          *upstream
	method     []byte
	reported   []byte // X-Pave-Route of the answer (nil: none)
	idempotent bool
	head       bool
	attempt    int
	tc         traceContext
	upReq      []byte // the request as sent upstream, kept for retries
	routeBuf   []byte
	status     int
	bytes      int
	started    bool // response bytes went to the client
	sent       bool // some attempt may have reached an instance
	caller     string
	merchant   string
}

// startRequest routes the complete request at the start of c.in.
func (l *loop) startRequest(c *lconn) {
	g := l.g
	h := &c.h
	total := h.headLen + h.contentLength
	r := &c.req
	*r = request{start: time.Now(), method: append(r.method[:0], h.method...), upReq: r.upReq[:0], reported: r.reported[:0], routeBuf: r.routeBuf}
	r.idempotent = isIdempotent(h.method)
	r.head = string(h.method) == "HEAD"
	c.closeAfter = c.closeAfter || h.close
	c.nreq++
	l.g.loopRequests.Add(1)
	c.state = csWaiting
	c.deadline = l.now + int64(g.opts.UpstreamTimeout)

	if g.accessCh != nil {
		r.caller = callerOf(h.baggage, h.caller)
		r.merchant = boundField(h.merchant)
	}
	in := requestIn{host: h.host, path: h.path, method: h.method, version: h.version, sticky: h.sticky,
		cookie: h.cookie, token: h.tester, edge: h.edge, addr: c.addr, now: l.now}
	rt, code, err := g.route(g.table.Load(), &in)
	r.rt = rt
	if rt.route != nil {
		// The key may point into c.in: keep a copy (in the request's
		// buffer, reused from request to request).
		r.rt.route = append(r.routeBuf[:0], rt.route...)
		r.routeBuf = r.rt.route
	}
	if err != nil {
		marker := markNoBackend
		if rt.s == nil {
			marker = nil
		}
		l.respondError(c, code, errorBody(err), marker)
		l.consume(c, total)
		l.finish(c, 0)
		return
	}
	b := rt.b
	r.tc.fromTraceparent(h.traceparent)

	// The upstream request: the client's head less hop-by-hop and
	// replaced lines, then traceparent, X-Pave-Edge, X-Forwarded-For.
	var merged [maxDrops + 3]span
	drops := append(merged[:0], h.drops[:h.ndrop]...)
	if b.cluster != "" && h.edgeLine.end != 0 {
		drops = insertSpan(drops, h.edgeLine)
	}
	if !rt.pinHonoured && h.versionLine.end != 0 {
		drops = insertSpan(drops, h.versionLine)
	}
	if b.cluster == "" && h.testerLine.end != 0 {
		drops = insertSpan(drops, h.testerLine)
	}
	out := appendKept(r.upReq, c.in, 0, h.headLen-2, drops)
	out = append(out, "traceparent: "...)
	out = r.tc.appendTraceparent(out)
	out = append(out, "\r\n"...)
	if b.cluster != "" {
		out = append(out, "X-Pave-Edge: "...)
		out = append(out, g.edgeValue...)
		out = append(out, "\r\n"...)
	}
	if c.addr.IsValid() {
		out = append(out, "X-Forwarded-For: "...)
		out = appendForwardedFor(out, h.xff, c.addr)
		out = append(out, "\r\n"...)
	}
	out = append(out, "\r\n"...)
	out = append(out, c.in[h.headLen:total]...)
	r.upReq = out
	if m := g.mirrorFor(&r.rt, h.method, h.path, int(h.contentLength)); m != nil {
		m.enqueue(h.method, r.rt.route, h.path, &r.tc, append([]byte(nil), out...))
	}
	l.consume(c, total)
	l.attempt(c)
}

// insertSpan adds a dropped line, keeping the spans in head order.
func insertSpan(drops []span, s span) []span {
	drops = append(drops, s)
	for i := len(drops) - 1; i > 0 && drops[i].start < drops[i-1].start; i-- {
		drops[i], drops[i-1] = drops[i-1], drops[i]
	}
	return drops
}

// attempt sends the request to an endpoint of its backend.
func (l *loop) attempt(c *lconn) {
	g := l.g
	r := &c.req
	u := g.pick(&r.rt, r.attempt, l.now)
	if u == nil {
		l.fail(c, errNoBackend{"no ready instance"}, false)
		return
	}
	r.u = u
	uc, err := l.upstreamConn(u, !r.idempotent)
	if err != nil {
		g.failed(u)
		l.retry(c, err, !errors.Is(err, errNoFreeConns))
		return
	}
	uc.client = c
	c.up = uc
	uc.out, uc.outOff = r.upReq, 0
	uc.gotHead, uc.sentBytes, uc.bodyLeft, uc.closeDelim = false, false, 0, false
	uc.chunk = chunkedBody{}
	c.deadline = l.now + int64(g.opts.UpstreamTimeout)
	if uc.connecting {
		uc.deadline = l.now + int64(g.opts.DialTimeout)
		return
	}
	l.upstreamWrite(uc)
}

// retry tries another attempt when the core allows it, else answers with
// an error.
func (l *loop) retry(c *lconn, err error, dial bool) {
	r := &c.req
	r.sent = r.sent || !dial && !errors.Is(err, errNoFreeConns)
	if l.g.retryAfterFailure(&r.rt, err, dial, r.idempotent, r.started, r.attempt, l.now) {
		r.attempt++
		l.attempt(c)
		return
	}
	l.fail(c, err, false)
}

// fail ends a request that reached no answer.
func (l *loop) fail(c *lconn, err error, timeout bool) {
	r := &c.req
	if r.started {
		// Part of the answer went out: the client can only learn of the
		// failure by the connection closing.
		l.observe(c, 0)
		l.closeClient(c)
		return
	}
	code, body := failureAnswer(&r.rt, err, timeout)
	l.respondError(c, code, body, failureMark(r.sent))
	l.finish(c, 0)
}

// respondError queues a plain-text error answer made by the gateway.
func (l *loop) respondError(c *lconn, code int, msg string, marker []byte) {
	out := append(c.out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, statusText(code)...)
	out = append(out, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\n"...)
	if marker != nil {
		out = append(out, hdrGatewayError...)
		out = append(out, ": "...)
		out = append(out, marker...)
		out = append(out, "\r\n"...)
	}
	if c.closeAfter || l.stopping {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if !c.req.head {
		out = append(out, msg...)
	}
	c.out = out
	c.req.status = code
	c.req.bytes = len(msg)
}

func statusText(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return "Error"
}

// finish completes the request in flight: statistics, access record,
// then the next request. statsStatus is what the version's statistics
// count (0: failed).
func (l *loop) finish(c *lconn, statsStatus int) {
	l.observe(c, statsStatus)
	c.state = csIdle
	c.up = nil
	if l.conns[c.fd] != c {
		return
	}
	if l.flush(c) {
		l.clientProgress(c)
	}
}

// observe counts the request in flight (the core's finish).
func (l *loop) observe(c *lconn, statsStatus int) {
	r := &c.req
	o := outcome{status: r.status, statsStatus: statsStatus, bytes: r.bytes, method: r.method,
		caller: r.caller, merchant: r.merchant, tc: &r.tc}
	if len(r.reported) > 0 {
		o.reported = r.reported
	}
	l.g.finish(&r.rt, r.start, &o)
}

// upstreamRead reads the answer while the client keeps up with it.
func (l *loop) upstreamRead(uc *lconn) {
	c := uc.client
	for l.upstreamReadSome(uc, c) {
		if !l.flush(c) || c.outOff < len(c.out) {
			return
		}
	}
}

// upstreamReadSome reads until the upstream is drained or the client's
// output reaches the high-water mark; true asks for a flush and another
// round.
func (l *loop) upstreamReadSome(uc *lconn, c *lconn) bool {
	for uc.readable && len(c.out)-c.outOff < highWater {
		if cap(uc.in) == 0 {
			uc.in = l.getBuf(&l.ubufs, upstreamBufSize)
		} else if len(uc.in) == cap(uc.in) {
			l.upstreamFailed(uc, errBadResponse, false)
			return false
		}
		space := uc.in[len(uc.in):cap(uc.in)]
		n, e := rawRead(uc.fd, space)
		if e == syscall.EAGAIN {
			uc.readable = false
			break
		}
		if e != 0 || n == 0 {
			if e == 0 && uc.closeDelim {
				l.responseDone(uc, false)
				return false
			}
			var err error = errConnClosed
			if e != 0 {
				err = os.NewSyscallError("read", e)
			}
			if uc.gotHead {
				c.req.started = true
			}
			l.upstreamFailed(uc, err, false)
			return false
		}
		if n < len(space) && !uc.hup {
			uc.readable = false
		}
		uc.sentBytes = true
		uc.in = uc.in[:len(uc.in)+n]
		if !l.processResponse(uc) {
			return false
		}
	}
	if l.conns[c.fd] != c {
		return false
	}
	if c.outOff < len(c.out) {
		if !l.flush(c) {
			return false
		}
	}
	return uc.readable && c.up == uc && c.outOff == len(c.out)
}

// processResponse turns buffered upstream bytes into client output;
// false when the request ended or moved elsewhere.
func (l *loop) processResponse(uc *lconn) bool {
	c := uc.client
	r := &c.req
	g := l.g
	for !uc.gotHead {
		own := hdrRespVersion
		if r.rt.b.cluster != "" {
			own = hdrRespCluster
		}
		n, err := parseResponseHead(uc.in, own, r.rt.b.cluster != "", &uc.resp)
		if err != nil {
			u := uc.u
			l.closeUpstream(uc)
			g.failed(u)
			r.sent = true
			l.fail(c, err, false)
			return false
		}
		if n == 0 {
			return true
		}
		st := uc.resp.status
		if st < 200 {
			if st == 101 {
				u := uc.u
				l.closeUpstream(uc)
				g.failed(u)
				r.sent = true
				l.fail(c, errBadResponse, false)
				return false
			}
			uc.in = uc.in[:copy(uc.in, uc.in[n:])]
			continue
		}
		g.succeeded(uc.u, st)
		if g.retryElsewhere(&r.rt, st, uc.resp.gatewayError, r.idempotent, r.attempt, l.now) {
			r.sent = r.sent || !unsentMark(uc.resp.gatewayError)
			l.closeUpstream(uc)
			c.up = nil
			r.attempt++
			l.attempt(c)
			return false
		}
		if uc.resp.route != nil {
			r.reported = append(r.reported[:0], uc.resp.route...)
		}
		uc.gotHead = true
		r.status = st
		r.started = true
		switch {
		case r.head || st == 204 || st == 304:
			uc.bodyLeft = 0
		case uc.resp.chunked:
			uc.bodyLeft = -1
		case uc.resp.contentLength >= 0:
			uc.bodyLeft = uc.resp.contentLength
		default:
			uc.closeDelim = true
			c.closeAfter = true
		}
		out := append(c.out, "HTTP/1.1"...)
		out = appendKept(out, uc.in, 8, n-2, uc.resp.drops[:uc.resp.ndrop])
		if b := r.rt.b; b.cluster != "" {
			out = append(out, hdrRespCluster...)
			out = append(out, ": "...)
			out = append(out, b.cluster...)
		} else {
			out = append(out, hdrRespVersion...)
			out = append(out, ": "...)
			out = append(out, b.name...)
		}
		out = append(out, "\r\n"...)
		if c.closeAfter || l.stopping {
			out = append(out, "Connection: close\r\n"...)
		}
		c.out = append(out, "\r\n"...)
		uc.in = uc.in[:copy(uc.in, uc.in[n:])]
		c.state = csStreaming
	}
	// Body bytes.
	var k int
	done := false
	switch {
	case uc.closeDelim:
		k = len(uc.in)
	case uc.bodyLeft >= 0:
		k = int(min(int64(len(uc.in)), uc.bodyLeft))
		uc.bodyLeft -= int64(k)
		done = uc.bodyLeft == 0
	default:
		var err error
		k, done, err = uc.chunk.feed(uc.in)
		if err != nil {
			l.observe(c, 0)
			u := uc.u
			l.closeUpstream(uc)
			g.failed(u)
			l.closeClient(c)
			return false
		}
	}
	c.out = append(c.out, uc.in[:k]...)
	r.bytes += k
	extra := len(uc.in) > k
	uc.in = uc.in[:copy(uc.in, uc.in[k:])]
	if done {
		l.responseDone(uc, !uc.resp.close && !uc.hup && !extra && uc.outOff == len(uc.out))
		return false
	}
	return true
}
