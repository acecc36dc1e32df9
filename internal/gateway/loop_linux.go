//go:build linux

package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
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
	tick := min(g.opts.ReadHeaderTimeout, g.opts.ClientTimeout, g.opts.WriteTimeout, g.opts.UpstreamTimeout, g.opts.IdleTimeout, g.opts.DialTimeout) / 8
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
	var arrived []*lconn
	for _, c := range l.conns {
		switch {
		case c == nil || c.role != roleClient:
		case c.state == csIdle && c.outOff == len(c.out) && len(c.in) == 0 && !peerGone(uintptr(c.fd)):
			l.closeClient(c)
		default:
			c.closeAfter = true
			if c.state == csIdle && c.outOff == len(c.out) {
				// A request came in that the loop has not read yet
				// (an edge sent it on its pooled connection): closing
				// now would reset it unanswered, leaving the client
				// unsure whether it was served, which a POST cannot
				// be retried after. It is served, then the
				// connection closes.
				arrived = append(arrived, c)
			}
		}
	}
	for _, c := range arrived {
		c.readable = true
		l.clientProgress(c)
	}
	l.nextScan = l.now
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
		c.deadline = l.now + int64(l.g.opts.ReadHeaderTimeout)
		// The first bytes usually arrive with the connection.
		c.readable = true
		l.clientProgress(c)
	}
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
			c.req.sent = true
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
