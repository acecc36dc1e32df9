package telemetry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure the embedded store. Zero values take the defaults.
type Options struct {
	Dir           string        // data directory (wal/, hot/, cache/, needles/)
	Blob          Blob          // cold tier; default DirBlob{Dir/cold}
	FlushBytes    int           // flush the in-memory table at this size (8 MiB)
	FlushInterval time.Duration // …or this age (5s)
	MaxMemBytes   int           // refuse writes (ErrBusy) above this (32 MiB)
	BlockRows     int           // rows per block at most (16384)
	Partition     time.Duration // partition length (1h)
	ColdAfter     time.Duration // partitions older than this move to Blob (24h; <0 never)
	// Retention per service; DefaultRetention for the rest (0 keeps forever).
	Retention        map[string]time.Duration
	DefaultRetention time.Duration
	MaintainEvery    time.Duration // compaction, retention and cold moves (1m; <0 only by call)
	CreateSegment    CreateFunc    // WAL segment files; tests inject failures
	// NoNeedles keeps no needle files (needles.go): every read of the
	// cold tier goes to Blob, and no local disk holds its rare lines.
	NoNeedles bool
	Log       *slog.Logger
	Now       func() time.Time
}

type coldBlock struct{ meta *blockMeta }

// Embedded is the single-machine telemetry store.
type Embedded struct {
	o       Options
	log     *slog.Logger
	hotDir  string
	walDir  string
	cache   string
	w       *wal
	commits chan *commit
	flushCh chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup

	mu      sync.RWMutex
	active  *memtable
	frozen  []*memtable
	memSize int
	hot     map[string]*blockMeta   // by partition/name
	cold    map[string]*blockMeta   // by partition/name
	needles map[string]*needleIndex // cold blocks' needle files, by partition/name (nil: the block has none)
	corrupt map[string]string       // by partition/name: why it is not served
	flushed uint64

	blocksRead atomic.Int64 // blocks read from disk or blob, for Stats
	blobReads  atomic.Int64 // GETs of cold blocks (whole or ranged), for Stats
	blobBytes  atomic.Int64 // their bytes
	// needleReads counts cold blocks answered from their needle files.
	needleReads atomic.Int64
	needleDir   string
	needleSeed  maphash.Seed

	cachingMu sync.Mutex
	caching   map[string]bool // cold blocks being written to the local cache
	filling   map[string]bool // cold blocks being fetched whole for the cache (coldread.go)
	cacheWG   sync.WaitGroup

	filesMu  sync.RWMutex // readers of block files vs. their deletion
	flushMu  sync.Mutex   // one flush or maintenance at a time
	closeErr error
	closed   bool
}

type commit struct {
	frame  []byte
	kind   byte // entryLogs or entrySpans
	count  int  // records in the frame
	approx int  // their approxSize
	size   int
	rotate bool
	done   chan error
}

var _ Store = (*Embedded)(nil)

// Open opens (or creates) the store in o.Dir and recovers it: blocks of an
// unfinished flush are removed, unflushed WAL segments are replayed.
func Open(ctx context.Context, o Options) (*Embedded, error) {
	if o.Dir == "" {
		return nil, errors.New("telemetry: Options.Dir is required")
	}
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.FlushBytes, 8<<20)
	def(&o.MaxMemBytes, 32<<20)
	def(&o.BlockRows, 16384)
	if o.FlushInterval <= 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.Partition <= 0 {
		o.Partition = time.Hour
	}
	if o.ColdAfter == 0 {
		o.ColdAfter = 24 * time.Hour
	}
	if o.MaintainEvery == 0 {
		o.MaintainEvery = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CreateSegment == nil {
		o.CreateSegment = createOSFile
	}
	if o.Blob == nil {
		o.Blob = DirBlob{Root: filepath.Join(o.Dir, "cold")}
	}
	s := &Embedded{o: o, log: o.Log, hotDir: filepath.Join(o.Dir, "hot"), walDir: filepath.Join(o.Dir, "wal"),
		cache: filepath.Join(o.Dir, "cache"), needleDir: filepath.Join(o.Dir, "needles"), needleSeed: maphash.MakeSeed(), needles: map[string]*needleIndex{}, commits: make(chan *commit, 1024), flushCh: make(chan struct{}, 1),
		stop: make(chan struct{}), active: &memtable{}, hot: map[string]*blockMeta{}, cold: map[string]*blockMeta{}, caching: map[string]bool{}, filling: map[string]bool{},
		corrupt: map[string]string{}}
	for _, d := range []string{s.hotDir, s.walDir, s.cache} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
	}
	if err := s.recover(ctx); err != nil {
		return nil, err
	}
	s.wg.Add(2)
	go s.committer()
	go s.flusher()
	return s, nil
}

// Close flushes what is in memory and stops the background work.
func (s *Embedded) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.mu.Unlock()
	err := s.Flush(context.Background())
	close(s.stop)
	s.wg.Wait()
	s.cacheWG.Wait()
	s.w.close()
	s.closeErr = err
	return err
}
