package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
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
	raw    syscall.RawConn // nil: write through Conn
	rd, wd deadline
}

func newLazyConn(c net.Conn) *lazyConn {
	lc := &lazyConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			lc.raw = raw
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
	for {
		n, err := c.read(p)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && c.rd.rearm(c.Conn.SetReadDeadline) {
			continue
		}
		return n, err
	}
}

func (c *lazyConn) Write(p []byte) (int, error) {
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
	n := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				if r == 0 {
					errno = syscall.EIO // a socket write of n > 0 bytes never writes 0
					return true
				}
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
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
	n := 0
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
	})
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
