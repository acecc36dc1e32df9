//go:build linux

package telemetry

import (
	"os"

	"golang.org/x/sys/unix"
)

// willNeed asks the kernel to start reading rs of f into the page cache
// and returns without waiting (POSIX_FADV_WILLNEED): every range is then
// in flight at once, from one thread.
func willNeed(f *os.File, rs []byteRange) {
	for _, r := range rs {
		_ = unix.Fadvise(int(f.Fd()), r.off, r.n, unix.FADV_WILLNEED)
	}
}
