package runtime

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"time"
)

// maxLine bounds one line handed to the OutputSink; longer lines are cut
// into pieces.
const maxLine = 64 << 10

// tail follows the instance's log files and hands new lines to the
// OutputSink until the returned function is called. The files, not pipes,
// carry the output, so a service keeps writing while the control plane
// restarts; an adopted process is followed from the files' current end.
func (in *instance) tail(p *process) (stop func()) {
	sink := in.l.opts.Output
	if sink == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var done []chan struct{}
	for _, stream := range []string{"stdout", "stderr"} {
		path := filepath.Join(in.dir, stream+".log")
		f, err := os.Open(path)
		if err != nil {
			in.l.log.Warn("cannot follow instance output", "instance", in.name, "file", path, "err", err)
			continue
		}
		// An owned process was started after the file was opened for
		// append; starting from the end may miss its first lines when it
		// wrote before this point, so owned processes start from the
		// offset recorded when they were started.
		if _, err := f.Seek(in.outputOffset(stream, p), io.SeekStart); err != nil {
			f.Close()
			continue
		}
		d := make(chan struct{})
		done = append(done, d)
		go func() {
			defer close(d)
			defer f.Close()
			follow(f, quit, func(line []byte) { sink.Line(in.spec.Service, in.spec.Version, in.name, stream, line) })
		}()
	}
	return func() {
		close(quit)
		for _, d := range done {
			<-d
		}
	}
}

// outputOffset is where following a stream starts: the file's size when
// the process was started (owned) or now (adopted).
func (in *instance) outputOffset(stream string, p *process) int64 {
	in.mu.Lock()
	off, ok := in.offsets[stream]
	in.mu.Unlock()
	if ok && p.exited != nil {
		return off
	}
	fi, err := os.Stat(filepath.Join(in.dir, stream+".log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// follow reads r every 200ms and emits whole lines until quit is closed;
// then it reads what is left and emits an unterminated last line too.
func follow(r io.Reader, quit <-chan struct{}, emit func([]byte)) {
	emitLine := func(b []byte) {
		for len(b) > maxLine {
			emit(b[:maxLine])
			b = b[maxLine:]
		}
		emit(b)
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 32<<10)
	drain := func() {
		for {
			n, err := r.Read(chunk)
			buf = append(buf, chunk[:n]...)
			start := 0
			for {
				i := bytes.IndexByte(buf[start:], '\n')
				if i < 0 {
					break
				}
				emitLine(bytes.TrimSuffix(buf[start:start+i], []byte{'\r'}))
				start += i + 1
			}
			for len(buf)-start >= maxLine {
				emit(buf[start : start+maxLine])
				start += maxLine
			}
			buf = buf[:copy(buf, buf[start:])]
			if n == 0 || err != nil {
				return
			}
		}
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		drain()
		select {
		case <-quit:
			drain()
			if len(buf) > 0 {
				emitLine(buf)
			}
			return
		case <-t.C:
		}
	}
}
