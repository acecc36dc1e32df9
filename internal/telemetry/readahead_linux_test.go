//go:build linux

package telemetry

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident reports whether every page of r in the file at path is in the
// page cache.
func resident(t *testing.T, path string, r byteRange) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	page := int64(os.Getpagesize())
	vec := make([]byte, (st.Size()+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	for p := r.off / page; p <= (r.end()-1)/page; p++ {
		if vec[p]&1 == 0 {
			return false
		}
	}
	return true
}

// With a cold page cache, a query's row groups in hot blocks are all asked
// of the kernel before the decoder reads the first (so the disk reads
// overlap), and only those groups.
func TestColdHotBlocksAreReadAheadByGroup(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(o *Options) { o.BlockRows = 2048 })
	ctx := context.Background()
	logs := genLogs(8 * 2048)
	for i := 700; i < len(logs); i += 2048 {
		logs[i].Message = "card declined: fraud rule R-0007"
	}
	if err := s.AppendLogs(ctx, slices.Clone(logs)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	q := Query{Contains: "fraud rule R-0007", Limit: 100}
	rows := q.rowFilter()
	blocks := s.blocksFor(func(m *blockMeta) bool { return q.mayMatchBlock(m) && rows.plan.anyGroup(m) })
	if len(blocks) < 4 {
		t.Fatalf("the phrase is in %d blocks; the test needs several", len(blocks))
	}
	type want struct {
		path    string
		r       byteRange
		resides bool
	}
	var checks []want
	for i := range blocks {
		c := &blocks[i]
		c.need = func(m *blockMeta, g *groupMeta) bool { return logGroupWanted(m, g, bloomKey{}, "", rows) }
		path := filepath.Join(dir, "hot", c.meta.Partition, c.meta.Name)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		needed := hotRanges(*c)
		for _, r := range needed {
			checks = append(checks, want{path, r, true})
		}
		// A group far from every needed one stays on disk.
		for gi := range c.meta.Groups {
			g := groupRange(&c.meta.Groups[gi])
			far := true
			for _, r := range needed {
				far = far && (g.end()+2*coalesceGap < r.off || g.off > r.end()+2*coalesceGap)
			}
			if far {
				checks = append(checks, want{path, g, false})
				break
			}
		}
	}
	for _, c := range checks {
		if resident(t, c.path, c.r) {
			t.Fatalf("%s %+v is still in the page cache after POSIX_FADV_DONTNEED: the test cannot tell a cold read here", c.path, c.r)
		}
	}
	s.readAheadLocal(blocks, 0)
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range checks {
		if !c.resides {
			continue
		}
		for !resident(t, c.path, c.r) {
			if time.Now().After(deadline) {
				t.Fatalf("%s %+v, a group the query reads, was not read ahead", c.path, c.r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, c := range checks {
		if !c.resides && resident(t, c.path, c.r) {
			t.Errorf("%s %+v, a group the query does not read, was read ahead", c.path, c.r)
		}
	}
	for i := range blocks {
		if !blocks[i].hinted {
			t.Errorf("block %s not marked hinted", blocks[i].meta.Name)
		}
	}
	res, err := s.Query(ctx, q)
	if err != nil || len(res.Logs) != 8 {
		t.Fatalf("the query: %d lines, %v; want 8", len(res.Logs), err)
	}
}

// A cold block whose copy is in the local cache is read ahead like a hot
// one: its groups the query reads are asked of the kernel at once, from
// the cached file; a cold block not in the cache is left to the blob
// fetch.
func TestCachedColdBlocksAreReadAhead(t *testing.T) {
	dir := t.TempDir()
	now := t0.Add(30 * time.Minute)
	s := openTest(t, dir, func(o *Options) {
		o.Blob, o.ColdAfter, o.BlockRows = DirBlob{Root: t.TempDir()}, time.Hour, 2048
		o.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	logs := genLogs(8 * 2048)
	for i := 700; i < len(logs); i += 2048 {
		logs[i].Message = "card declined: fraud rule R-0007"
	}
	if err := s.AppendLogs(ctx, slices.Clone(logs)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(8 * time.Hour)
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	q := Query{Contains: "fraud rule R-0007", Limit: 100}
	rows := q.rowFilter()
	blocks := s.blocksFor(func(m *blockMeta) bool { return q.mayMatchBlock(m) && rows.plan.anyGroup(m) })
	if len(blocks) < 4 {
		t.Fatalf("the phrase is in %d blocks; the test needs several", len(blocks))
	}
	// All but the last block in the local cache, out of the page cache.
	var paths []string
	var needed [][]byteRange
	for i := range blocks {
		c := &blocks[i]
		if !c.cold {
			t.Fatalf("block %s is not cold", c.meta.Name)
		}
		c.need = func(m *blockMeta, g *groupMeta) bool { return logGroupWanted(m, g, bloomKey{}, "", rows) }
		path := filepath.Join(s.cache, c.meta.Partition, c.meta.Name)
		paths, needed = append(paths, path), append(needed, hotRanges(*c))
		if i == len(blocks)-1 {
			continue
		}
		b, err := s.o.Blob.Get(ctx, c.meta.Partition+"/"+c.meta.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unix.Sync()
	for _, p := range paths[:len(paths)-1] {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		if resident(t, p, byteRange{0, 1}) {
			t.Fatalf("%s is still in the page cache after POSIX_FADV_DONTNEED: the test cannot tell a cold read here", p)
		}
	}
	s.readAheadLocal(blocks, 0)
	deadline := time.Now().Add(30 * time.Second)
	for i, p := range paths[:len(paths)-1] {
		for _, r := range needed[i] {
			for !resident(t, p, r) {
				if time.Now().After(deadline) {
					t.Fatalf("%s %+v, a cached group the query reads, was not read ahead", p, r)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if !blocks[i].hinted {
			t.Errorf("cached block %s not marked hinted", blocks[i].meta.Name)
		}
	}
	if last := blocks[len(blocks)-1]; last.hinted {
		t.Errorf("block %s, not in the cache, marked hinted: the blob fetch would skip it", last.meta.Name)
	}
	res, err := s.Query(ctx, q)
	if err != nil || len(res.Logs) != 8 || len(res.Warnings) > 0 {
		t.Fatalf("the query: %d lines, %v %v; want 8", len(res.Logs), err, res.Warnings)
	}
}
