//go:build linux

// The event loop's upstream connections: dialing, the per-loop keep-alive
// pools, writing requests and noticing broken connections.

package gateway

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
)

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
// one. With peek, a pooled connection is first checked to be still open.
func (l *loop) upstreamConn(u *upstream, peek bool) (*lconn, error) {
	for list := l.idle[u]; len(list) > 0; list = l.idle[u] {
		uc := list[len(list)-1]
		l.idle[u] = list[:len(list)-1]
		// The upstream may have closed it since the loop last looked (its
		// close an event not handled yet, as when a lost cluster's
		// gateway or a killed instance goes while the loop is busy): a
		// request written to it would fail once sent, which a POST may
		// not be retried after, though nothing reached the upstream. One
		// peek finds it before the write. It costs a system call (about
		// 3 µs on a loaded VM, BenchmarkPeerGone), so only requests that
		// could not be retried pay it: an idempotent one on a closed
		// connection is simply retried.
		if peek && peerGone(uintptr(uc.fd)) {
			l.closeUpstream(uc)
			continue
		}
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
