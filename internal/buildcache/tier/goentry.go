package tier

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// GoOutputHeader carries a Go entry's OutputID (hex) on the server's /go/
// requests.
const GoOutputHeader = "Go-Output-Id"

// MaxObjectSize bounds one stored object: the go command caches compiled
// packages and linked test binaries, which stay well below it.
const MaxObjectSize = 1 << 30

// A GoEntry is the action result the go command keeps under an ActionID:
// the OutputID (the SHA-256 of the output, itself in the CAS), its size and
// when it was stored. It is a line of text so that bazel-remote clients
// reading /ac see something printable.
type GoEntry struct {
	OutputID string
	Size     int64
	Time     time.Time
}

func (e GoEntry) Encode() []byte {
	return fmt.Appendf(nil, "go1 %s %d %d\n", e.OutputID, e.Size, e.Time.UnixNano())
}

func ParseGoEntry(b []byte) (GoEntry, error) {
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != "go1" {
		return GoEntry{}, fmt.Errorf("not a Go action entry (want \"go1 OUTPUTID SIZE TIME\")")
	}
	if err := CheckKey(f[1]); err != nil {
		return GoEntry{}, err
	}
	size, err1 := strconv.ParseInt(f[2], 10, 64)
	nanos, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return GoEntry{}, fmt.Errorf("Go action entry %q: bad size or time", b)
	}
	return GoEntry{OutputID: f[1], Size: size, Time: time.Unix(0, nanos)}, nil
}
