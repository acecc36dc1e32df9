package kit

import (
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// lineWriter batches whole log lines into few write calls: a write(2) per
// request would cost more than the rest of the middleware together. Lines
// reach the underlying writer at most flushEvery later, and at once when
// the buffer grows past flushAt or the App closes.
type lineWriter struct {
	mu     sync.Mutex
	buf    []byte
	w      io.Writer
	done   chan struct{}
	closed chan struct{}
	once   sync.Once
}

const flushAt = 64 << 10

func newLineWriter(w io.Writer, flushEvery time.Duration) *lineWriter {
	lw := &lineWriter{w: w, buf: make([]byte, 0, flushAt), done: make(chan struct{}), closed: make(chan struct{})}
	go func() {
		defer close(lw.closed)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				_ = lw.flush()
			case <-lw.done:
				return
			}
		}
	}()
	return lw
}

// Write takes one or more complete lines; it never splits them.
func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	lw.buf = append(lw.buf, p...)
	var err error
	if len(lw.buf) >= flushAt {
		err = lw.flushLocked()
	}
	lw.mu.Unlock()
	return len(p), err
}

func (lw *lineWriter) flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.flushLocked()
}

func (lw *lineWriter) flushLocked() error {
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

func (lw *lineWriter) close() error {
	lw.once.Do(func() { close(lw.done) })
	<-lw.closed
	return lw.flush()
}

// appendJSONString appends s as a JSON string. Every control character,
// quote and backslash is escaped and invalid UTF-8 becomes U+FFFD, so no
// value can end the record early or forge a key: this is what makes log
// injection through a header impossible. U+2028 and U+2029 are escaped too
// for consumers that treat them as line ends.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"':
				b = append(b, '\\', '"')
			case '\\':
				b = append(b, '\\', '\\')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
