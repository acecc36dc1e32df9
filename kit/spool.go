package kit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// spool is the disk buffer for export batches the receiver did not take.
// Each batch is one file holding the exact OTLP request body, written to a
// temporary name, synced and renamed, so a crash leaves either a whole
// batch or nothing. Names sort by creation time, so batches are re-sent
// oldest first. Several processes may share a directory: a file another
// process already sent and removed is simply skipped.
type spool struct {
	dir   string
	max   int64
	seq   atomic.Uint64
	mu    sync.Mutex
	size  int64 // bytes of files this process knows about
	count atomic.Int64
}

const spoolExt = ".otlp"

func openSpool(dir string, max int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create disk buffer %s (set KIT_SPOOL_DIR to a writable directory): %w", dir, err)
	}
	s := &spool{dir: dir, max: max}
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			s.size += fi.Size()
		}
	}
	s.count.Store(int64(len(files)))
	return s, nil
}

var errSpoolFull = errors.New("disk buffer full")

// write stores one batch durably; it returns only once the batch is on disk.
func (s *spool) write(signal string, body []byte) error {
	s.mu.Lock()
	if s.size+int64(len(body)) > s.max {
		s.mu.Unlock()
		return fmt.Errorf("%w (%d bytes, KIT_SPOOL_MAX_BYTES=%d)", errSpoolFull, s.size, s.max)
	}
	s.size += int64(len(body))
	s.mu.Unlock()

	name := fmt.Sprintf("%020d-%d-%08d.%s%s", time.Now().UnixNano(), os.Getpid(), s.seq.Add(1), signal, spoolExt)
	final := filepath.Join(s.dir, name)
	tmp := final + ".tmp"
	err := writeSynced(tmp, body)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		s.mu.Lock()
		s.size -= int64(len(body))
		s.mu.Unlock()
		return fmt.Errorf("write disk buffer %s: %w", final, err)
	}
	s.count.Add(1)
	return nil
}

func writeSynced(path string, body []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// list returns the complete batch files, oldest first.
func (s *spool) list() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read disk buffer %s: %w", s.dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), spoolExt) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// signalOf returns "traces" or "logs" from a batch file name.
func signalOf(name string) string {
	base := strings.TrimSuffix(name, spoolExt)
	return base[strings.LastIndexByte(base, '.')+1:]
}

func (s *spool) read(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // another process sent it
	}
	return b, err
}

func (s *spool) remove(name string, size int) {
	err := os.Remove(filepath.Join(s.dir, name))
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		s.mu.Lock()
		s.size -= int64(size)
		if s.size < 0 {
			s.size = 0
		}
		s.mu.Unlock()
		if s.count.Add(-1) < 0 {
			s.count.Store(0)
		}
	}
}
