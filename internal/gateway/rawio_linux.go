//go:build linux

package gateway

import (
	"syscall"
	"unsafe"
)

// rawIOSupported: lazyConn reads and writes with raw system calls (see
// lazyConn.write).
const rawIOSupported = true

// writeAll is RawConn.Write's callback: false asks to wait for the
// socket to become writable.
func (w *rawIO) writeAll(fd uintptr) bool {
	for w.n < len(w.p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.p[w.n])), uintptr(len(w.p)-w.n))
		switch e {
		case 0:
			if r == 0 {
				w.errno = syscall.EIO // a socket write of n > 0 bytes never writes 0
				return true
			}
			w.n += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// readSome is RawConn.Read's callback.
func (r *rawIO) readSome(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.p[0])), uintptr(len(r.p)))
		switch e {
		case 0:
			r.n = int(n)
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.errno = e
			return true
		}
	}
}

// peerGone reports, without waiting, whether the peer closed the
// connection or sent something unasked (an idle upstream connection must
// have nothing to read).
func peerGone(fd uintptr) bool {
	var b [1]byte
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1, syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		case 0:
			return true // EOF (n == 0) or unasked bytes
		}
		_ = n
		return true
	}
}
