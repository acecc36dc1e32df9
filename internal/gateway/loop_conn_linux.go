//go:build linux

// The event loop's connections: the state of a client or upstream
// socket, reading requests from clients, writing answers back, and
// handing a connection over to the fasthttp or h2c server.

package gateway

import (
	"net"
	"net/netip"
	"os"
	"syscall"
)

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
			if n > 0 {
				// The head is in: the body has the rest of ClientTimeout.
				c.deadline = c.reqStart + int64(l.g.opts.ClientTimeout)
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
			// A request starts: its head must be in within
			// ReadHeaderTimeout, however slowly it trickles (slowloris).
			c.reqStart = l.now
			c.deadline = l.now + int64(l.g.opts.ReadHeaderTimeout)
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
			c.deadline = l.now + int64(l.g.opts.WriteTimeout)
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

// consume drops n bytes of input (a pipelined next request stays).
func (l *loop) consume(c *lconn, n int) {
	c.in = c.in[:copy(c.in, c.in[n:])]
	if len(c.in) > 0 {
		c.reqStart = l.now
	}
}
