//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Why an event loop: with a goroutine per connection, every proxied
// request parks and wakes goroutines through the runtime's poller (an
// EAGAIN read, a park, a netpoll, a wake-up, on both the client and the
// upstream side), and at 64 connections on one core that, not parsing,
// was most of the gateway's CPU. Here one goroutine per core owns an
// epoll instance with every client and upstream socket in it, edge-
// triggered, and moves bytes with raw read/write system calls; a short
// read means the socket is drained, so no EAGAIN read is made in the
// common case. The loop parks in the Go scheduler only when no socket is
// ready (its epoll descriptor sits in the runtime poller), so other
// goroutines (access log, configuration, the fasthttp path) keep running
// and no thread is locked.

const (
	evIn    = uint32(syscall.EPOLLIN)
	evOut   = uint32(syscall.EPOLLOUT)
	evRdHup = uint32(syscall.EPOLLRDHUP)
	evErr   = uint32(syscall.EPOLLERR | syscall.EPOLLHUP)
	evET    = uint32(1) << 31

	clientBufSize   = 8 << 10
	upstreamBufSize = 32 << 10
	maxClientBuf    = maxHeadBytes + maxInlineBytes
	highWater       = 256 << 10 // client output buffered before upstream reads pause
	idleUpstream    = 90 * time.Second
)

// loopSupported: Serve may use the event loop.
const loopSupported = true

type connRole uint8

const (
	roleClient connRole = iota + 1
	roleUpstream
)

type clientState uint8

const (
	csIdle      clientState = iota // between requests
	csWaiting                      // request sent or being sent upstream
	csStreaming                    // response head forwarded, body flowing
)

// lconn is one socket of the loop: a client or an upstream connection.
type lconn struct {
	fd       int
	role     connRole
	readable bool // edge-triggered readiness not yet consumed
	writable bool
	hup      bool   // the peer closed its side: read until EOF
	in       []byte // buffered input
	out      []byte // pending output from outOff
	outOff   int
	deadline int64 // unix ns; 0: none

	// client side
	state      clientState
	ip         []byte
	addr       netip.Addr
	nreq       int
	closeAfter bool
	reqStart   int64 // first byte of a partial request (0: none)
	up         *lconn
	req        request
	h          reqHead

	// upstream side
	u          *upstream
	client     *lconn
	connecting bool
	reused     bool
	gotHead    bool
	resp       respHead
	bodyLeft   int64
	chunk      chunkedBody
	closeDelim bool
	sentBytes  bool // some response bytes were seen (no retry after that)
}

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
	caller     string
	merchant   string
}

// loop is one event loop.
type loop struct {
	g        *Gateway
	ep       int
	epFile   *os.File
	epRaw    syscall.RawConn
	lfd      int // listener (a dup owned by the loop)
	wakeR    int
	wakeW    int
	h1, h2   *connQueue
	conns    []*lconn // by fd
	nclients int
	events   []syscall.EpollEvent
	now      int64
	nextScan int64
	tick     int64
	armed    int64
	stopping bool
	stopAt   int64
	// acceptPaused: the listener is out of the epoll set until then.
	acceptPaused int64
	lev          uint32
	names        reqNames

	idle   map[*upstream][]*lconn
	count  map[*upstream]int
	addrs  map[*upstream]syscall.Sockaddr
	cbufs  [][]byte // free client buffers
	ubufs  [][]byte // free upstream buffers
	waitFn func(fd uintptr) bool
	nready int

	stopOnce sync.Once
	done     chan struct{}
}

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// poll takes the ready events without waiting.
func (l *loop) poll() int {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

// startLoops serves ln with one event loop per GOMAXPROCS. It returns
// nil when ln cannot be served by the loop (then the caller accepts).
func (g *Gateway) startLoops(ln net.Listener, h1, h2 *connQueue) ([]*loop, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, nil
	}
	if _, ok := ln.Addr().(*net.TCPAddr); !ok {
		return nil, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	n := runtime.GOMAXPROCS(0)
	var loops []*loop
	for range n {
		var lfd int
		var derr error
		if err := raw.Control(func(fd uintptr) {
			r, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
			lfd = int(r)
			if e != 0 {
				derr = e
			}
		}); err != nil || derr != nil {
			for _, l := range loops {
				l.stop()
			}
			return nil, errors.Join(err, derr)
		}
		l, err := g.newLoop(lfd, h1, h2, n > 1)
		if err != nil {
			syscall.Close(lfd)
			for _, l := range loops {
				l.stop()
			}
			return nil, err
		}
		loops = append(loops, l)
	}
	for _, l := range loops {
		go l.run()
	}
	return loops, nil
}

func (g *Gateway) newLoop(lfd int, h1, h2 *connQueue, exclusive bool) (*loop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("gateway: epoll: %w", err)
	}
	if err := syscall.SetNonblock(ep, true); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(ep)
		return nil, err
	}
	tick := min(g.opts.ClientTimeout, g.opts.UpstreamTimeout, g.opts.IdleTimeout, g.opts.DialTimeout) / 8
	tick = min(max(tick, 5*time.Millisecond), 250*time.Millisecond)
	l := &loop{
		g: g, ep: ep, lfd: lfd, wakeR: p[0], wakeW: p[1], h1: h1, h2: h2,
		events: make([]syscall.EpollEvent, 256),
		tick:   int64(tick),
		names:  reqNames{version: g.versionHeader, sticky: g.stickyHeader, caller: g.callerHeader, merchant: g.merchantHeader, tester: g.testerHeader},
		idle:   map[*upstream][]*lconn{},
		count:  map[*upstream]int{},
		addrs:  map[*upstream]syscall.Sockaddr{},
		done:   make(chan struct{}),
	}
	l.waitFn = func(uintptr) bool {
		l.nready = l.poll()
		return l.nready > 0
	}
	lev := evIn
	if exclusive {
		lev |= 1 << 28 // EPOLLEXCLUSIVE
	}
	if err := syscall.SetNonblock(lfd, true); err != nil {
		l.closeAll()
		return nil, err
	}
	l.lev = lev
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: lev, Fd: int32(lfd)}); err != nil {
		l.closeAll()
		return nil, err
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, l.wakeR, &syscall.EpollEvent{Events: evIn, Fd: int32(l.wakeR)}); err != nil {
		l.closeAll()
		return nil, err
	}
	// The epoll descriptor is readable when events are ready: the runtime
	// poller waits on it for the loop.
	l.epFile = os.NewFile(uintptr(ep), "gateway-epoll")
	if l.epRaw, err = l.epFile.SyscallConn(); err != nil {
		l.closeAll()
		return nil, err
	}
	return l, nil
}

// stop asks the loop to finish: stop accepting, let requests in flight
// complete (up to 10 s), close.
func (l *loop) stop() {
	l.stopOnce.Do(func() {
		_, _ = syscall.Write(l.wakeW, []byte{1})
	})
}

func (l *loop) closeAll() {
	for _, c := range l.conns {
		if c != nil {
			syscall.Close(c.fd)
		}
	}
	l.conns = nil
	if l.lfd >= 0 {
		syscall.Close(l.lfd)
		l.lfd = -1
	}
	syscall.Close(l.wakeR)
	syscall.Close(l.wakeW)
	if l.epFile != nil {
		l.epFile.Close()
	} else {
		syscall.Close(l.ep)
	}
}

func (l *loop) run() {
	defer close(l.done)
	defer l.closeAll()
	l.now = time.Now().UnixNano()
	l.nextScan = l.now + l.tick
	for {
		n := l.poll()
		if n == 0 {
			if l.stopping && l.nclients == 0 {
				return
			}
			l.wait()
			n = l.nready
			l.nready = 0
		}
		l.now = time.Now().UnixNano()
		for i := range n {
			ev := &l.events[i]
			l.event(int(ev.Fd), ev.Events)
		}
		if l.now >= l.nextScan {
			l.scan()
			if l.stopping && (l.nclients == 0 || l.now >= l.stopAt) {
				return
			}
		}
	}
}

// wait parks the goroutine until an event is ready or the next scan is
// due.
func (l *loop) wait() {
	if l.armed != l.nextScan {
		l.armed = l.nextScan
		_ = l.epFile.SetReadDeadline(time.Unix(0, l.nextScan))
	}
	if err := l.epRaw.Read(l.waitFn); err != nil {
		l.nready = 0
	}
}

func (l *loop) event(fd int, ev uint32) {
	switch fd {
	case l.lfd:
		l.accept()
		return
	case l.wakeR:
		var b [8]byte
		_, _ = syscall.Read(l.wakeR, b[:])
		l.beginStop()
		return
	}
	if fd >= len(l.conns) {
		return
	}
	c := l.conns[fd]
	if c == nil {
		return
	}
	if ev&(evIn|evErr|evRdHup) != 0 {
		c.readable = true
	}
	if ev&(evErr|evRdHup) != 0 {
		// A short read no longer means drained: the end of the stream
		// sends no further edge.
		c.hup = true
	}
	if ev&(evOut|evErr) != 0 {
		c.writable = true
	}
	if c.role == roleClient {
		l.clientEvent(c)
	} else {
		l.upstreamEvent(c)
	}
}

func (l *loop) beginStop() {
	if l.stopping {
		return
	}
	l.stopping = true
	l.stopAt = l.now + int64(10*time.Second)
	if l.lfd >= 0 {
		if l.acceptPaused == 0 {
			_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, nil)
		}
		syscall.Close(l.lfd)
		l.lfd = -1
	}
	for _, c := range l.conns {
		if c != nil && c.role == roleClient && c.state == csIdle && c.outOff == len(c.out) {
			l.closeClient(c)
		} else if c != nil && c.role == roleClient {
			c.closeAfter = true
		}
	}
	l.nextScan = l.now
}

func (l *loop) register(c *lconn) bool {
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, c.fd, &syscall.EpollEvent{Events: evIn | evOut | evRdHup | evET, Fd: int32(c.fd)}); err != nil {
		syscall.Close(c.fd)
		return false
	}
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*lconn, len(l.conns)+64)...)
	}
	l.conns[c.fd] = c
	return true
}

func (l *loop) accept() {
	for range 64 {
		nfd, sa, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			if err != syscall.EAGAIN && err != syscall.ECONNABORTED && err != syscall.EINTR {
				l.g.opts.Log.Warn("gateway: accept", "err", err)
				// Out of descriptors: the level-triggered listener would
				// spin; stop watching it until the next scans.
				if l.acceptPaused = l.now + int64(100*time.Millisecond); syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, l.lfd, nil) != nil {
					l.acceptPaused = 0
				}
			}
			return
		}
		_ = syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		c := &lconn{fd: nfd, role: roleClient}
		switch a := sa.(type) {
		case *syscall.SockaddrInet4:
			c.addr = netip.AddrFrom4(a.Addr)
		case *syscall.SockaddrInet6:
			c.addr = netip.AddrFrom16(a.Addr).Unmap()
		}
		if c.addr.IsValid() {
			c.ip = c.addr.AppendTo(nil)
		}
		if !l.register(c) {
			continue
		}
		l.nclients++
		c.deadline = l.now + int64(l.g.opts.ClientTimeout)
		// The first bytes usually arrive with the connection.
		c.readable = true
		l.clientProgress(c)
	}
}

func (l *loop) getBuf(free *[][]byte, size int) []byte {
	if n := len(*free); n > 0 {
		b := (*free)[n-1]
		*free = (*free)[:n-1]
		return b[:0]
	}
	return make([]byte, 0, size)
}

func (l *loop) putBuf(free *[][]byte, b []byte, size int) {
	if cap(b) == size && len(*free) < 1024 {
		*free = append(*free, b[:0])
	}
}

// ---- client side ----

func (l *loop) clientEvent(c *lconn) {
	if c.writable && c.outOff < len(c.out) {
		if !l.flush(c) {
			return
		}
		if c.up != nil && c.up.readable {
			// Output drained: resume the upstream that waited for it.
			l.upstreamRead(c.up)
			return
		}
	}
	l.clientProgress(c)
}

// clientProgress reads and starts requests while the connection is idle.
func (l *loop) clientProgress(c *lconn) {
	for c.state == csIdle && c.outOff == len(c.out) && l.conns[c.fd] == c {
		if len(c.in) > 0 {
			if c.nreq == 0 && len(c.in) >= len(h2Preface) && string(c.in[:len(h2Preface)]) == h2Preface {
				l.handover(c, l.h2)
				return
			}
			n, err := parseRequestHead(c.in, &l.names, &c.h)
			if err != nil {
				l.handover(c, l.h1)
				return
			}
			if n > 0 && len(c.in) >= n+c.h.contentLength {
				l.startRequest(c)
				continue
			}
		}
		if !c.readable {
			break
		}
		if cap(c.in) == 0 {
			c.in = l.getBuf(&l.cbufs, clientBufSize)
		} else if len(c.in) == cap(c.in) {
			if cap(c.in) >= maxClientBuf {
				l.handover(c, l.h1)
				return
			}
			nb := make([]byte, len(c.in), min(2*cap(c.in), maxClientBuf))
			copy(nb, c.in)
			l.putBuf(&l.cbufs, c.in, clientBufSize)
			c.in = nb
		}
		space := c.in[len(c.in):cap(c.in)]
		n, e := rawRead(c.fd, space)
		if e == syscall.EAGAIN {
			c.readable = false
			break
		}
		if e != 0 || n == 0 {
			l.closeClient(c)
			return
		}
		if n < len(space) && !c.hup {
			c.readable = false
		}
		if len(c.in) == 0 {
			c.reqStart = l.now
			c.deadline = l.now + int64(l.g.opts.ClientTimeout)
		}
		c.in = c.in[:len(c.in)+n]
	}
	if l.conns[c.fd] != c || c.state != csIdle {
		return
	}
	if len(c.in) == 0 && c.outOff == len(c.out) {
		if cap(c.in) > 0 {
			l.putBuf(&l.cbufs, c.in, clientBufSize)
			c.in = nil
		}
		if c.closeAfter || l.stopping {
			l.closeClient(c)
			return
		}
		c.reqStart = 0
		if c.nreq > 0 {
			c.deadline = l.now + int64(l.g.opts.IdleTimeout)
		}
	}
}

func (l *loop) closeClient(c *lconn) {
	if l.conns[c.fd] != c {
		return
	}
	if c.up != nil {
		l.closeUpstream(c.up)
		c.up = nil
	}
	l.forget(c)
	syscall.Close(c.fd)
}

// forget removes a connection from the loop (without closing its fd).
func (l *loop) forget(c *lconn) {
	l.conns[c.fd] = nil
	if c.role == roleClient {
		l.nclients--
		if cap(c.in) == clientBufSize {
			l.putBuf(&l.cbufs, c.in, clientBufSize)
		}
		c.in = nil
	}
}

// handover passes the connection and the bytes read so far to the
// fasthttp (h1) or h2c server.
func (l *loop) handover(c *lconn, q *connQueue) {
	l.g.handovers.Add(1)
	_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, c.fd, nil)
	pre := append([]byte(nil), c.in...)
	l.forget(c)
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return
	}
	pc := &peekedConn{Conn: newLazyConn(nc), pre: pre}
	go func() {
		if !q.put(pc) {
			nc.Close()
		}
	}()
}

// flush writes the pending output; false when the connection was closed.
func (l *loop) flush(c *lconn) bool {
	for c.outOff < len(c.out) {
		if !c.writable {
			c.deadline = l.now + int64(l.g.opts.ClientTimeout+l.g.opts.UpstreamTimeout)
			return true
		}
		n, e := rawWrite(c.fd, c.out[c.outOff:])
		if e == syscall.EAGAIN {
			c.writable = false
			continue
		}
		if e != 0 {
			l.closeClient(c)
			return false
		}
		c.outOff += n
	}
	c.out, c.outOff = c.out[:0], 0
	if cap(c.out) > highWater {
		c.out = nil
	}
	if c.state == csIdle && (c.closeAfter || l.stopping) && len(c.in) == 0 {
		l.closeClient(c)
		return false
	}
	return true
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

// consume drops n bytes of input (a pipelined next request stays).
func (l *loop) consume(c *lconn, n int) {
	c.in = c.in[:copy(c.in, c.in[n:])]
	if len(c.in) > 0 {
		c.reqStart = l.now
	}
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
	uc, err := l.upstreamConn(u)
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
	l.respondError(c, code, body, markUpstream)
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

// ---- upstream side ----

func (l *loop) sockaddr(u *upstream) (syscall.Sockaddr, error) {
	if sa, ok := l.addrs[u]; ok {
		return sa, nil
	}
	ap, err := netip.ParseAddrPort(u.addr)
	if err != nil {
		// A host name: resolve once (blocking the loop briefly), then
		// keep the address while the endpoint is in use.
		ta, rerr := net.ResolveTCPAddr("tcp", u.addr)
		if rerr != nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: rerr}
		}
		ap = ta.AddrPort()
	}
	var sa syscall.Sockaddr
	if a := ap.Addr().Unmap(); a.Is4() {
		sa = &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	} else {
		sa = &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	}
	l.addrs[u] = sa
	return sa, nil
}

var errNoFreeConns = errors.New("no free connections to the endpoint")

// upstreamConn returns an idle keep-alive connection to u or starts a new
// one.
func (l *loop) upstreamConn(u *upstream) (*lconn, error) {
	if list := l.idle[u]; len(list) > 0 {
		uc := list[len(list)-1]
		l.idle[u] = list[:len(list)-1]
		uc.deadline = 0
		uc.reused = true
		return uc, nil
	}
	if l.count[u] >= l.g.opts.MaxConnsPerEndpoint {
		return nil, errNoFreeConns
	}
	sa, err := l.sockaddr(u)
	if err != nil {
		return nil, err
	}
	family := syscall.AF_INET
	if _, ok := sa.(*syscall.SockaddrInet6); ok {
		family = syscall.AF_INET6
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	uc := &lconn{fd: fd, role: roleUpstream, u: u}
	err = syscall.Connect(fd, sa)
	switch err {
	case nil:
		uc.writable = true
	case syscall.EINPROGRESS:
		uc.connecting = true
	default:
		syscall.Close(fd)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: nil, Err: os.NewSyscallError("connect", err)}
	}
	if !l.register(uc) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("epoll registration failed")}
	}
	l.count[u]++
	return uc, nil
}

func (l *loop) closeUpstream(uc *lconn) {
	if l.conns[uc.fd] != uc {
		return
	}
	if uc.client == nil {
		list := l.idle[uc.u]
		for i, x := range list {
			if x == uc {
				l.idle[uc.u] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(l.idle[uc.u]) == 0 {
			delete(l.idle, uc.u)
		}
	} else if uc.client.up == uc {
		uc.client.up = nil
	}
	uc.client = nil
	if l.count[uc.u]--; l.count[uc.u] <= 0 {
		// Forget endpoints without connections, so endpoint churn does
		// not grow the loop's maps.
		delete(l.count, uc.u)
		delete(l.addrs, uc.u)
	}
	if cap(uc.in) == upstreamBufSize {
		l.putBuf(&l.ubufs, uc.in, upstreamBufSize)
	}
	uc.in = nil
	l.forget(uc)
	syscall.Close(uc.fd)
}

func (l *loop) upstreamEvent(uc *lconn) {
	if uc.client == nil {
		// Idle in the pool: data or a close from the upstream means the
		// connection cannot be reused.
		if uc.readable {
			l.closeUpstream(uc)
		}
		return
	}
	if uc.connecting {
		if !uc.writable && !uc.readable {
			return
		}
		uc.connecting = false
		if v, err := syscall.GetsockoptInt(uc.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || v != 0 {
			if err == nil {
				err = os.NewSyscallError("connect", syscall.Errno(v))
			}
			l.upstreamFailed(uc, &net.OpError{Op: "dial", Net: "tcp", Err: err}, true)
			return
		}
		uc.deadline = 0
		uc.readable = false
	}
	if uc.writable && uc.outOff < len(uc.out) {
		if !l.upstreamWrite(uc) {
			return
		}
	}
	if uc.readable {
		l.upstreamRead(uc)
	}
}

// upstreamWrite sends the pending request bytes; false when the
// connection failed.
func (l *loop) upstreamWrite(uc *lconn) bool {
	for uc.outOff < len(uc.out) && uc.writable {
		n, e := rawWrite(uc.fd, uc.out[uc.outOff:])
		if e == syscall.EAGAIN {
			uc.writable = false
			break
		}
		if e != 0 {
			l.upstreamFailed(uc, os.NewSyscallError("write", e), false)
			return false
		}
		uc.outOff += n
	}
	return true
}

// upstreamFailed handles a broken upstream connection.
func (l *loop) upstreamFailed(uc *lconn, err error, dial bool) {
	c := uc.client
	u := uc.u
	l.closeUpstream(uc)
	l.g.failed(u)
	if c == nil || l.conns[c.fd] != c {
		return
	}
	c.up = nil
	l.retry(c, err, dial)
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

var errConnClosed = errors.New("the upstream closed the connection")

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
		n, err := parseResponseHead(uc.in, own, &uc.resp)
		if err != nil {
			u := uc.u
			l.closeUpstream(uc)
			g.failed(u)
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
				l.fail(c, errBadResponse, false)
				return false
			}
			uc.in = uc.in[:copy(uc.in, uc.in[n:])]
			continue
		}
		g.succeeded(uc.u, st)
		if g.retryElsewhere(&r.rt, st, uc.resp.gatewayError, r.idempotent, r.attempt, l.now) {
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

// responseDone completes a forwarded answer and pools the upstream
// connection when it can be reused.
func (l *loop) responseDone(uc *lconn, reuse bool) {
	c := uc.client
	r := &c.req
	uc.client = nil
	c.up = nil
	uc.out, uc.outOff = nil, 0
	if reuse && !l.stopping {
		if cap(uc.in) == upstreamBufSize {
			l.putBuf(&l.ubufs, uc.in, upstreamBufSize)
		}
		uc.in = nil
		uc.deadline = l.now + int64(idleUpstream)
		l.idle[uc.u] = append(l.idle[uc.u], uc)
	} else {
		l.closeUpstream(uc)
	}
	l.finish(c, r.status)
}

// scan enforces timeouts.
func (l *loop) scan() {
	l.nextScan = l.now + l.tick
	now := l.now
	g := l.g
	if l.acceptPaused != 0 && l.acceptPaused <= now && l.lfd >= 0 {
		l.acceptPaused = 0
		_ = syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, l.lfd, &syscall.EpollEvent{Events: l.lev, Fd: int32(l.lfd)})
	}
	for _, c := range l.conns {
		if c == nil || c.deadline == 0 || c.deadline > now {
			continue
		}
		if c.role == roleUpstream {
			switch {
			case c.client == nil:
				l.closeUpstream(c) // idle too long
			case c.connecting:
				l.upstreamFailed(c, &net.OpError{Op: "dial", Net: "tcp", Err: errDialTimeout}, true)
			}
			continue
		}
		switch {
		case c.outOff < len(c.out) && !c.writable:
			if c.up != nil {
				l.observe(c, 0)
			}
			l.closeClient(c) // the client does not read its answer
		case c.state == csIdle:
			l.closeClient(c) // idle, or a request too slow to arrive
		default:
			// The upstream did not answer in time: never retried.
			uc := c.up
			if uc != nil {
				u := uc.u
				l.closeUpstream(uc)
				g.failed(u)
			}
			c.up = nil
			l.fail(c, errUpstreamTimeout, true)
		}
	}
	if l.stopping {
		for _, c := range l.conns {
			if c != nil && c.role == roleUpstream && c.client == nil {
				l.closeUpstream(c)
			}
		}
	}
}

var (
	errDialTimeout     = errors.New("dial timeout")
	errUpstreamTimeout = errors.New("timeout")
)
