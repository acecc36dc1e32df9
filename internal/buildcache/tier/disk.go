// Package tier is the build cache's local disk tier, shared by the server
// (pave cache serve) and the GOCACHEPROG client, and the format of a Go
// action entry both store.
package tier

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// Kind is one of the two namespaces of a cache: action results (any bytes
// under a key the writer chose) and content-addressed blobs (under the
// SHA-256 of their bytes), as in bazel-remote.
type Kind string

const (
	AC  Kind = "ac"
	CAS Kind = "cas"
)

var (
	// ErrNotFound: no entry under the key.
	ErrNotFound = errors.New("not in the cache")
	// ErrHashMismatch: a CAS body whose SHA-256 is not its key.
	ErrHashMismatch = errors.New("body does not match its SHA-256 key")
	// ErrSizeMismatch: fewer or more bytes than announced.
	ErrSizeMismatch = errors.New("body size does not match the announced size")
	// ErrTooLarge: an object larger than the cache's bound.
	ErrTooLarge = errors.New("object larger than the cache's size bound")
	// ErrNoSpace: the disk is full; room is being made, retry later.
	ErrNoSpace = errors.New("no space left on the cache's disk")
)

// CheckKey accepts a SHA-256 in lowercase hex, the only key shape either
// namespace uses, so a key can never name a path outside the cache.
func CheckKey(key string) error {
	if len(key) != 2*sha256.Size {
		return fmt.Errorf("key %.80q: want 64 lowercase hex digits (a SHA-256), got %d characters", key, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("key %.80q: character %d is %q; want 64 lowercase hex digits (a SHA-256)", key, i, c)
		}
	}
	return nil
}

// Disk is a cache tier on a local file system: ROOT/ac/xx/KEY and
// ROOT/cas/xx/KEY. A write goes to ROOT/tmp, is verified, synced and then
// renamed into place, so a crash never leaves a partial entry under a key;
// leftovers in ROOT/tmp are removed at open. With a size bound, the least
// recently used entries are removed to stay under it.
type Disk struct {
	root string
	max  int64 // 0: unbounded and no index (the client's tier)
	sync bool  // fsync file and directory before an entry is visible

	// OnEvict, when set, is told of each entry the bound removed.
	OnEvict func(kind Kind, size int64)
	// CreateTemp makes the temporary file of a write: a seam for tests of
	// a full disk (default os.CreateTemp).
	CreateTemp func(dir string) (TempFile, error)

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently used first
	index map[string]*list.Element
	size  int64
}

type entry struct {
	name string // "ac/KEY" or "cas/KEY"
	size int64
}

// TempFile is what a write needs of its temporary file.
type TempFile interface {
	io.Writer
	Name() string
	Sync() error
	Close() error
}

// DiskOptions configure OpenDisk.
type DiskOptions struct {
	// MaxBytes bounds the tier (least recently used entries go first); 0
	// leaves it unbounded and skips the startup scan.
	MaxBytes int64
	// Sync makes writes durable (fsync of the file and its directory)
	// before they become visible: the server's tier is the shared truth and
	// must survive power loss; a client's tier may skip it.
	Sync bool
}

// OpenDisk opens (creating) a tier under root.
func OpenDisk(root string, o DiskOptions) (*Disk, error) {
	d := &Disk{root: root, max: o.MaxBytes, sync: o.Sync, lru: list.New(), index: map[string]*list.Element{},
		CreateTemp: func(dir string) (TempFile, error) { return os.CreateTemp(dir, "put-*") }}
	for _, sub := range []string{"ac", "cas", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			return nil, fmt.Errorf("cache directory %s: %w", root, err)
		}
	}
	// Uploads a crash interrupted were never renamed into place; drop them.
	tmps, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, t := range tmps {
		os.Remove(filepath.Join(root, "tmp", t.Name()))
	}
	if d.max > 0 {
		if err := d.scan(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// scan rebuilds the LRU index from the files, oldest modification last.
func (d *Disk) scan() error {
	type found struct {
		name string
		size int64
		mod  int64
	}
	var all []found
	for _, k := range []Kind{AC, CAS} {
		base := filepath.Join(d.root, string(k))
		err := filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			if CheckKey(de.Name()) != nil {
				return nil
			}
			fi, err := de.Info()
			if err != nil {
				return nil // removed meanwhile
			}
			all = append(all, found{string(k) + "/" + de.Name(), fi.Size(), fi.ModTime().UnixNano()})
			return nil
		})
		if err != nil {
			return fmt.Errorf("scanning cache directory %s: %w", base, err)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for _, f := range all {
		d.index[f.name] = d.lru.PushBack(&entry{f.name, f.size})
		d.size += f.size
	}
	d.mu.Lock()
	d.evictLocked(0)
	d.mu.Unlock()
	return nil
}

// Root is the tier's directory.
func (d *Disk) Root() string { return d.root }

// Path is where the entry lives; for the client's tier it is the DiskPath
// the go command reads.
func (d *Disk) Path(kind Kind, key string) string {
	return filepath.Join(d.root, string(kind), key[:2], key)
}

// Size is the bytes the index holds (0 for an unbounded tier).
func (d *Disk) Size() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size
}

// Open returns the entry's file and size, or ErrNotFound.
func (d *Disk) Open(kind Kind, key string) (*os.File, int64, error) {
	if err := CheckKey(key); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(d.Path(kind, key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	d.touch(string(kind) + "/" + key)
	return f, fi.Size(), nil
}

// ReadFile returns a small entry's bytes (an action result).
func (d *Disk) ReadFile(kind Kind, key string) ([]byte, error) {
	f, _, err := d.Open(kind, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// Has reports whether the entry exists with the given size (-1: any).
func (d *Disk) Has(kind Kind, key string, size int64) bool {
	if CheckKey(key) != nil {
		return false
	}
	fi, err := os.Stat(d.Path(kind, key))
	return err == nil && (size < 0 || fi.Size() == size)
}

func (d *Disk) touch(name string) {
	if d.max == 0 {
		return
	}
	d.mu.Lock()
	if e, ok := d.index[name]; ok {
		d.lru.MoveToFront(e)
	}
	d.mu.Unlock()
}

// Put stores size bytes from r under the key (size -1: unknown). A CAS body
// must hash to its key, else ErrHashMismatch and nothing is stored.
func (d *Disk) Put(kind Kind, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if d.max > 0 && size > d.max {
		return fmt.Errorf("%w: %d bytes, bound %d", ErrTooLarge, size, d.max)
	}
	tmp, err := d.CreateTemp(filepath.Join(d.root, "tmp"))
	if err != nil {
		return d.diskError(err, size)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	var src io.Reader = r
	if size >= 0 {
		src = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err != nil {
		return d.diskError(err, size)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("%w: got %d bytes or more, announced %d", ErrSizeMismatch, n, size)
	}
	if d.max > 0 && n > d.max {
		return fmt.Errorf("%w: %d bytes, bound %d", ErrTooLarge, n, d.max)
	}
	if kind == CAS {
		if got := hex.EncodeToString(h.Sum(nil)); got != key {
			return fmt.Errorf("%w: key %s, body's SHA-256 %s", ErrHashMismatch, key, got)
		}
	}
	if d.sync {
		if err := tmp.Sync(); err != nil {
			return d.diskError(err, n)
		}
	}
	if err := tmp.Close(); err != nil {
		return d.diskError(err, n)
	}
	dst := d.Path(kind, key)
	dir := filepath.Dir(dst)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return d.diskError(err, n)
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return err
		}
	}
	done = true
	if d.sync {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	d.added(string(kind)+"/"+key, n)
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func (d *Disk) added(name string, n int64) {
	if d.max == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.index[name]; ok {
		d.size -= e.Value.(*entry).size
		e.Value.(*entry).size = n
		d.lru.MoveToFront(e)
	} else {
		d.index[name] = d.lru.PushFront(&entry{name, n})
	}
	d.size += n
	d.evictLocked(0)
}

// evictLocked removes least recently used entries until size+room fits
// the bound.
func (d *Disk) evictLocked(room int64) {
	for d.size+room > d.max && d.evictOneLocked() {
	}
}

// evictOneLocked removes the least recently used entry, if any.
func (d *Disk) evictOneLocked() bool {
	e := d.lru.Back()
	if e == nil {
		return false
	}
	en := e.Value.(*entry)
	d.lru.Remove(e)
	delete(d.index, en.name)
	d.size -= en.size
	kind, key, _ := cut(en.name)
	os.Remove(d.Path(kind, key))
	if d.OnEvict != nil {
		d.OnEvict(kind, en.size)
	}
	return true
}

func cut(name string) (Kind, string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return Kind(name[:i]), name[i+1:], true
		}
	}
	return "", name, false
}

// diskError turns a full disk into ErrNoSpace and makes room: the least
// recently used entries go until a tenth of the index (at least the
// object's size) is free, so reads keep working and the next write fits.
func (d *Disk) diskError(err error, size int64) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	if d.max > 0 {
		d.mu.Lock()
		room := max(size, d.size/10)
		target := d.size - room
		for d.size > target && d.evictOneLocked() {
		}
		d.mu.Unlock()
	}
	return fmt.Errorf("%w: %v", ErrNoSpace, err)
}
