package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Why lazy deadlines: fasthttp moves a connection's deadlines on every
// request (idle and read timeout on the client side, write and read
// timeout on the upstream side), and each move is a time.Now and a timer
// modification in the Go runtime's poller: five per proxied request,
// a visible share of the gateway's CPU. Deadlines here only ever move
// later, by the same 60–120 s, so the timer armed for an earlier deadline
// is left alone; when it fires, the read or write checks the deadline
// actually wanted and, if that is still in the future, re-arms and
// retries. A timeout is thus never reported early nor late, and the
// runtime timer is touched about once per timeout period per connection
// instead of several times per request.

// deadline is one direction's deadline of a lazyConn, in Unix nanoseconds
// (0: none).
type deadline struct {
	wanted atomic.Int64 // what the user of the connection asked for
	armed  atomic.Int64 // what the runtime poller has
}

// lazyConn is a net.Conn whose deadlines are applied lazily (see above).
type lazyConn struct {
	net.Conn
	raw    syscall.RawConn // nil: read and write through Conn
	r, w   rawIO
	rd, wd deadline
	// checkStale (upstream connections): before the first write after a
	// read, check the upstream did not close the pooled connection while
	// it was idle; a request written to it would fail in a way that may
	// not be retried for a POST, though nothing reached the upstream.
	checkStale, writing bool
}

// errStaleConn: a pooled upstream connection was closed by the upstream
// while idle; nothing was sent on it, so any request may be retried.
var errStaleConn = errors.New("the upstream closed the idle connection")

// newUpstreamConn wraps a connection to an upstream.
func newUpstreamConn(c net.Conn) *lazyConn {
	lc := newLazyConn(c)
	lc.checkStale = lc.raw != nil
	return lc
}

func newLazyConn(c net.Conn) *lazyConn {
	lc := &lazyConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok && rawIOSupported {
		if raw, err := sc.SyscallConn(); err == nil {
			lc.raw = raw
			lc.r.fn, lc.w.fn = lc.r.readSome, lc.w.writeAll
		}
	}
	return lc
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// set records the wanted deadline and arms the poller only when the armed
// one would fire later than wanted (or not at all). An armed deadline
// earlier than wanted, or one armed when none is wanted, fires early and
// is corrected by rearm.
func (d *deadline) set(t time.Time, apply func(time.Time) error) error {
	w := unixNano(t)
	d.wanted.Store(w)
	if w == 0 {
		return nil
	}
	if a := d.armed.Load(); a != 0 && a <= w {
		return nil
	}
	d.armed.Store(w)
	return apply(t)
}

// rearm is called after a deadline error: it reports whether the error
// was early (the wanted deadline is not reached, or none is wanted) after
// arming the poller with the wanted deadline.
func (d *deadline) rearm(apply func(time.Time) error) bool {
	w := d.wanted.Load()
	if w != 0 && w <= time.Now().UnixNano() {
		return false
	}
	var t time.Time
	if w != 0 {
		t = time.Unix(0, w)
	}
	d.armed.Store(w)
	return apply(t) == nil
}

func (c *lazyConn) SetReadDeadline(t time.Time) error {
	return c.rd.set(t, c.Conn.SetReadDeadline)
}

func (c *lazyConn) SetWriteDeadline(t time.Time) error {
	return c.wd.set(t, c.Conn.SetWriteDeadline)
}

func (c *lazyConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

func (c *lazyConn) Read(p []byte) (int, error) {
	if c.checkStale {
		c.writing = false
	}
	for {
		n, err := c.read(p)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && c.rd.rearm(c.Conn.SetReadDeadline) {
			continue
		}
		return n, err
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
	if c.checkStale && !c.writing {
		c.writing = true
		gone := false
		_ = c.raw.Control(func(fd uintptr) { gone = peerGone(fd) })
		if gone {
			return 0, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: errStaleConn}
		}
	}
	written := 0
	for {
		n, err := c.write(p[written:])
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) && c.wd.rearm(c.Conn.SetWriteDeadline) {
			continue
		}
		return written, err
	}
}

// write writes p whole. Why not Conn.Write: the socket is non-blocking, so
// the write system call never waits, yet Conn.Write announces it to the Go
// scheduler as a possibly blocking one; a loopback write that also runs
// the receiver's TCP input often lasts past the scheduler monitor's 20 µs
// tick, which then hands the processor to another thread and back (with
// GOMAXPROCS=1, two context switches). A raw system call keeps the
// processor; when the socket buffer is full it waits in the poller as
// Conn.Write would.
func (c *lazyConn) write(p []byte) (int, error) {
	if c.raw == nil {
		return c.Conn.Write(p)
	}
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.p, w.n, w.errno = p, 0, 0
	err := c.raw.Write(w.fn)
	n, errno := w.n, w.errno
	w.p = nil
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return n, err
}

// read is Conn.Read with a raw system call, for the reason given at write.
func (c *lazyConn) read(p []byte) (int, error) {
	if c.raw == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p, r.n, r.errno = p, 0, 0
	err := c.raw.Read(r.fn)
	n, errno := r.n, r.errno
	r.p = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawIO is the state of one direction's raw system call; fn is bound once
// so that a call allocates nothing.
type rawIO struct {
	mu    sync.Mutex
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}
