//go:build !linux

package gateway

// rawIOSupported: elsewhere lazyConn reads and writes through net.Conn.
const rawIOSupported = false

func (w *rawIO) writeAll(fd uintptr) bool { panic("gateway: raw I/O is linux only") }

func (r *rawIO) readSome(fd uintptr) bool { panic("gateway: raw I/O is linux only") }

func peerGone(fd uintptr) bool { return false }
