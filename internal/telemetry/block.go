package telemetry

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// A block is one file of records of one kind (logs or spans) from one
// partition, sorted by service then time. Each field is a column of its own,
// compressed with zstd and checksummed; a JSON footer holds the columns'
// places, the block's time range, its services and bloom filters on trace_id
// (and merchant_id for logs), so queries skip blocks by reading only
// footers, which the store keeps in memory.
//
// Layout: "PAVBLK4\n" | columns… | footer JSON | footer length u32 | footer crc32c u32 | "PAVBEND\n"
//
// The digit of the magic is the format. Format 1 ("PAVBLK1\n") stored id
// columns (trace, span, parent) as a flag byte before each id; format 2
// stores them split (see splitIDs), about a byte and a half less per line.
// Format 3 adds the skip indexes (skipindex.go); format 4 salts each row
// group's word filters with the group's first time (saltedKey). All are
// read; only format 4 is written.

// blockFormatNow is the format new blocks are written in.
const blockFormatNow = 4

var (
	blockMagic   = []byte("PAVBLK4\n")
	blockMagicV3 = []byte("PAVBLK3\n")
	blockMagicV2 = []byte("PAVBLK2\n")
	blockMagicV1 = []byte("PAVBLK1\n")
	blockEnd     = []byte("PAVBEND\n")
)

// blockFormat is the format a block's magic declares: 1 to 4, or 0 for none.
func blockFormat(head []byte) int {
	switch {
	case len(head) < len(blockMagic):
		return 0
	case string(head[:len(blockMagic)]) == string(blockMagic):
		return blockFormatNow
	case string(head[:len(blockMagicV3)]) == string(blockMagicV3):
		return 3
	case string(head[:len(blockMagicV2)]) == string(blockMagicV2):
		return 2
	case string(head[:len(blockMagicV1)]) == string(blockMagicV1):
		return 1
	}
	return 0
}

// checkFormat ties the footer to the magic, so a footer cannot be read with
// the other format's column layout.
func checkFormat(head []byte, m *blockMeta) error {
	f := blockFormat(head)
	if f == 0 {
		return fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if want := max(m.Format, 1); f != want {
		return fmt.Errorf("%w: magic says format %d, footer %d", ErrCorrupt, f, want)
	}
	return nil
}

// ErrCorrupt marks a block whose checksum does not match: it is reported
// and never served.
var ErrCorrupt = errors.New("corrupt telemetry block")

type colMeta struct {
	Name string `json:"n"`
	Off  int64  `json:"o"`
	Len  int64  `json:"l"`
	CRC  uint32 `json:"c"`
}

// groupMeta is a row group: its rows are compressed column by column on
// their own, with their own bloom filter on trace_id, so a trace lookup
// decompresses only the groups that may hold the trace.
// Its columns lie back to back from Off, so the footer keeps only their
// lengths and checksums (column names follow from the block's kind).
type groupMeta struct {
	Rows    int       `json:"r"`
	Trace   bloom     `json:"t,omitempty"`
	Off     int64     `json:"o"`
	Lens    []int64   `json:"l"`
	CRCs    []uint32  `json:"c"`
	Columns []colMeta `json:"-"` // derived by expand
	// Skip indexes, format 3 only (see skipindex.go).
	MinT      int64       `json:"a,omitempty"`
	MaxT      int64       `json:"z,omitempty"`
	Words     bloom       `json:"w,omitempty"`
	AttrWords bloom       `json:"v,omitempty"`
	Dicts     []fieldDict `json:"d,omitempty"`
}

// groupRows is the row-group size: small enough that a lookup touches
// little, large enough that zstd still finds the repetition.
const groupRows = 512

type blockMeta struct {
	Name      string      `json:"name"`
	Kind      string      `json:"kind"` // "logs" or "spans"
	Partition string      `json:"partition"`
	Count     int         `json:"count"`
	MinTime   int64       `json:"min"`
	MaxTime   int64       `json:"max"`
	Services  []string    `json:"services"`
	WALSeq    uint64      `json:"wal_seq"`
	Replaces  []string    `json:"replaces,omitempty"`
	Groups    []groupMeta `json:"groups"`
	// Format is the block format (see blockMagic); absent means 1. It is in
	// the footer, so manifests of the cold tier carry it too.
	Format   int   `json:"format,omitempty"`
	Trace    bloom `json:"trace_bloom,omitempty"`
	Merchant bloom `json:"merchant_bloom,omitempty"`
	Size     int64 `json:"size"`
}

// mayHaveTrace asks the block's bloom filter.
func (m *blockMeta) mayHaveTrace(id string) bool { return m.Trace.mayContain(id) }

func (m *blockMeta) hasService(s string) bool {
	i := sort.SearchStrings(m.Services, s)
	return i < len(m.Services) && m.Services[i] == s
}

// bloom is a bloom filter using double hashing of a 64-bit FNV-1a; its
// first byte is the number of probes, the rest the bits, so filters of any
// size and probe count are read alike. Block filters use 16 bits per key
// and 11 probes (about 0.05% false positives: with a hundred blocks a
// lookup opens a wrong one once in twenty); row-group filters, consulted
// only inside blocks whose filter matched, 10 bits and 7 probes (about 1%:
// a wrong group read, from a cold disk, cost a lookup as much as the right
// one). Until block format 3 they were 10/7 and 6/4.
type bloom []byte

const (
	blockBloomBits, blockBloomProbes = 16, 11
	groupBloomBits, groupBloomProbes = 10, 7
)

func newBloom(keys, bitsPerKey, probes int) bloom {
	bits := max(keys*bitsPerKey, 64)
	b := make(bloom, 1+(bits+7)/8)
	b[0] = byte(probes)
	return b
}

// hashSet gathers the hashes of a filter's keys. Distinct keys are counted
// by sorting the hashes, which costs less than a set of strings.
type hashSet []uint64

func (s *hashSet) add(key string) { *s = append(*s, hash64(key)) }

// bloom sizes a filter for the distinct keys (sizing by rows wasted bytes
// where a trace has several lines) and fills it. It sorts s.
func (s *hashSet) bloom(bitsPerKey, probes int) bloom {
	slices.Sort(*s)
	*s = slices.Compact(*s)
	if len(*s) == 0 {
		return nil
	}
	b := newBloom(len(*s), bitsPerKey, probes)
	for _, v := range *s {
		b.add(keyOf(v))
	}
	return b
}

// saltedBloom is bloom for the word filters of format 4: each key salted
// with salt (the row group's first time, see saltedKey).
func (s *hashSet) saltedBloom(bitsPerKey, probes int, salt int64) bloom {
	slices.Sort(*s)
	*s = slices.Compact(*s)
	if len(*s) == 0 {
		return nil
	}
	b := newBloom(len(*s), bitsPerKey, probes)
	for _, v := range *s {
		b.add(saltedKey(v, salt))
	}
	return b
}

// saltedKey is a word filter's key in a row group of format 4: the token's
// hash mixed with the group's first time (splitmix64's finaliser). Logs
// repeat their vocabulary, so many groups hold the same words and got
// filters with the same bits: a needle that was a false positive of one
// was one of them all. In the benchmark's data "fraud rule R-0014" passed
// the filter of 255 of the 261 groups holding any "fraud rule R-nnnn" and
// read 113 blocks instead of 15. Salted, the false positives of groups
// are independent, about 2% each.
func saltedKey(h uint64, salt int64) bloomKey {
	x := h ^ uint64(salt)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return keyOf(x)
}

// bloomKey is a key's two hashes, computed once per lookup however many
// filters it is tested against.
type bloomKey struct{ h1, h2 uint32 }

func hashKey(key string) bloomKey { return keyOf(hash64(key)) }

func keyOf(v uint64) bloomKey { return bloomKey{uint32(v), uint32(v>>32) | 1} }

// hash64 is 64-bit FNV-1a (the filters on disk depend on it).
func hash64(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}

// blockIndex gathers what a block's footer says of its rows: the time
// range, the services and the trace ids' filters, for the block and for
// each row group.
type blockIndex struct {
	minT, maxT int64
	services   []string
	group, all hashSet // trace ids: of the current group, of the block
	merchants  hashSet
}

func newBlockIndex() *blockIndex { return &blockIndex{minT: math.MaxInt64, maxT: math.MinInt64} }

func (x *blockIndex) row(t int64, service, traceID string) {
	x.minT, x.maxT = min(x.minT, t), max(x.maxT, t)
	// Rows come sorted by service: a new one shows as a change.
	if n := len(x.services); n == 0 || x.services[n-1] != service {
		x.services = append(x.services, service)
	}
	if traceID != "" {
		x.group.add(traceID)
	}
}

// endGroup returns the finished group's filter.
func (x *blockIndex) endGroup() bloom {
	b := x.group.bloom(groupBloomBits, groupBloomProbes)
	x.all = append(x.all, x.group...)
	x.group = x.group[:0]
	return b
}

func (x *blockIndex) finish(meta *blockMeta) {
	meta.MinTime, meta.MaxTime = x.minT, x.maxT
	slices.Sort(x.services)
	meta.Services = slices.Compact(x.services)
	// The footer stays in memory: copies, not substrings of batch bodies.
	for i, s := range meta.Services {
		meta.Services[i] = dictValues.intern(s)
	}
	meta.Trace = x.all.bloom(blockBloomBits, blockBloomProbes)
	meta.Merchant = x.merchants.bloom(blockBloomBits, blockBloomProbes)
}

func (b bloom) add(k bloomKey) {
	if len(b) < 2 {
		return
	}
	n := uint32(len(b)-1) * 8
	for i := uint32(0); i < uint32(b[0]); i++ {
		p := (k.h1 + i*k.h2) % n
		b[1+p/8] |= 1 << (p % 8)
	}
}

// has is true when the key may be in the set; an empty filter holds no
// keys.
func (b bloom) has(k bloomKey) bool {
	if len(b) < 2 {
		return false
	}
	n := uint32(len(b)-1) * 8
	for i := uint32(0); i < uint32(b[0]); i++ {
		p := (k.h1 + i*k.h2) % n
		if b[1+p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

func (b bloom) mayContain(key string) bool { return b.has(hashKey(key)) }

// compressor is one zstd level. Text columns repeat and zstd's better
// level finds a tenth more of it; ids are random bytes and time deltas
// short varints, where that level costs twice the CPU of a faster one
// for the same size (measured on 16k-line blocks of random trace ids), so
// each column gets the level that pays (columnCompressor).
type compressor struct {
	mu sync.Mutex
	e  *zstd.Encoder
}

func newCompressor(level zstd.EncoderLevel) *compressor {
	// No zstd frame checksum: every column has its own CRC32C already.
	// A column of a row group is tens of kilobytes at most, so a 1 MiB
	// window loses nothing and keeps the three encoders' history small.
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
	return &compressor{e: e}
}

// appendCompressed appends b's compressed form to dst.
func (c *compressor) appendCompressed(dst, b []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.e.EncodeAll(b, dst)
}

var (
	zFastest = newCompressor(zstd.SpeedFastest)
	zDefault = newCompressor(zstd.SpeedDefault)
	zBetter  = newCompressor(zstd.SpeedBetterCompression)
	zdec, _  = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
)

func compress(b []byte) []byte { return zBetter.appendCompressed(nil, b) }

func columnCompressor(column string) *compressor {
	switch {
	case idWidth(column) > 0:
		return zFastest
	case column == "time" || column == "start" || column == "duration" || column == "duration_us":
		return zDefault
	}
	return zBetter
}

// column helpers

func putID(e *enc, id string, n int) {
	if len(id) == 2*n {
		var raw [16]byte
		if _, err := hex.Decode(raw[:n], []byte(id)); err == nil && hex.EncodeToString(raw[:n]) == id {
			e.b = append(e.b, 1)
			e.b = append(e.b, raw[:n]...)
			return
		}
	}
	e.b = append(e.b, 0)
	e.str(id)
}

func getID(d *dec, n int) string {
	if d.err != nil {
		return ""
	}
	if len(d.b) < 1 {
		d.err = errShort
		return ""
	}
	flag := d.b[0]
	d.b = d.b[1:]
	if flag == 0 {
		return d.str()
	}
	if len(d.b) < n {
		d.err = errShort
		return ""
	}
	s := hex.EncodeToString(d.b[:n])
	d.b = d.b[n:]
	return s
}

// interned decodes repeated strings of a column once.
type interned struct {
	d    *dec
	seen map[string]string
}

func (in *interned) str() string {
	n := in.d.uvarint()
	if in.d.err != nil || n > uint64(len(in.d.b)) {
		if in.d.err == nil {
			in.d.err = errShort
		}
		return ""
	}
	raw := in.d.b[:n]
	in.d.b = in.d.b[n:]
	if s, ok := in.seen[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if len(in.seen) < 4096 {
		in.seen[s] = s
	}
	return s
}

type blockWriter struct {
	out    []byte
	cols   []enc
	names  []string
	ids    []int // per column: the width of its raw ids, 0 for other columns
	zs     []*compressor
	groups []groupMeta
}

func newBlockWriter(names []string) *blockWriter {
	w := &blockWriter{out: append([]byte(nil), blockMagic...), cols: make([]enc, len(names)), names: names, ids: make([]int, len(names)),
		zs: make([]*compressor, len(names))}
	for i, n := range names {
		w.ids[i] = idWidth(n)
		w.zs[i] = columnCompressor(n)
	}
	return w
}

// endGroup compresses the columns of the rows written since the last call;
// g carries the group's indexes.
func (w *blockWriter) endGroup(rows int, trace bloom, g groupMeta) {
	g.Rows, g.Trace, g.Off = rows, trace, int64(len(w.out))
	for i := range w.cols {
		raw := w.cols[i].b
		if w.ids[i] > 0 {
			raw = splitIDs(raw, rows, w.ids[i])
		}
		off := len(w.out)
		w.out = w.zs[i].appendCompressed(w.out, raw)
		z := w.out[off:]
		crc := crc32.Checksum(z, castagnoli)
		g.Lens, g.CRCs = append(g.Lens, int64(len(z))), append(g.CRCs, crc)
		g.Columns = append(g.Columns, colMeta{Name: w.names[i], Off: int64(off), Len: int64(len(z)), CRC: crc})
		w.cols[i].b = w.cols[i].b[:0]
	}
	w.groups = append(w.groups, g)
}

func (w *blockWriter) finish(meta *blockMeta) ([]byte, error) {
	meta.Groups, meta.Format = w.groups, blockFormatNow
	js, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	// The footer is mostly bloom filters (base64 in JSON) and repeated
	// keys: compressed, it costs about a byte less per line.
	foot := compress(js)
	out := append(w.out, foot...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(foot)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(foot, castagnoli))
	out = append(out, blockEnd...)
	return out, nil
}

// readBlockMeta parses and checks a block's footer.
func readBlockMeta(data []byte) (*blockMeta, error) {
	if len(data) < len(blockMagic)+16 || blockFormat(data) == 0 ||
		string(data[len(data)-len(blockEnd):]) != string(blockEnd) {
		return nil, fmt.Errorf("%w: bad magic or truncated (%d bytes)", ErrCorrupt, len(data))
	}
	t := len(data) - len(blockEnd) - 8
	n := int(binary.LittleEndian.Uint32(data[t:]))
	sum := binary.LittleEndian.Uint32(data[t+4:])
	if n > t-len(blockMagic) {
		return nil, fmt.Errorf("%w: footer length %d out of range", ErrCorrupt, n)
	}
	foot := data[t-n : t]
	if crc32.Checksum(foot, castagnoli) != sum {
		return nil, fmt.Errorf("%w: footer checksum mismatch", ErrCorrupt)
	}
	var m blockMeta
	if err := unmarshalFooter(foot, &m); err != nil {
		return nil, err
	}
	if err := checkFormat(data, &m); err != nil {
		return nil, err
	}
	internDicts(&m)
	if err := checkGroups(&m, int64(t-n)); err != nil {
		return nil, err
	}
	m.Size = int64(len(data))
	return &m, nil
}

// checkGroups checks that every column lies before the footer and that
// the groups add up to the block's count.
func checkGroups(m *blockMeta, footOff int64) error {
	if err := m.expand(); err != nil {
		return err
	}
	rows := 0
	for _, g := range m.Groups {
		rows += g.Rows
		for _, c := range g.Columns {
			if c.Off < int64(len(blockMagic)) || c.Len < 0 || c.Off+c.Len > footOff {
				return fmt.Errorf("%w: column %s out of range", ErrCorrupt, c.Name)
			}
		}
	}
	if rows != m.Count || m.Count < 0 {
		return fmt.Errorf("%w: row groups hold %d rows, footer says %d", ErrCorrupt, rows, m.Count)
	}
	return nil
}

func unmarshalFooter(foot []byte, m *blockMeta) error {
	js, err := zdec.DecodeAll(foot, nil)
	if err != nil {
		return fmt.Errorf("%w: footer: %w", ErrCorrupt, err)
	}
	if err := json.Unmarshal(js, m); err != nil {
		return fmt.Errorf("%w: footer: %w", ErrCorrupt, err)
	}
	return nil
}

// expand derives each group's column places from the compact footer.
func (m *blockMeta) expand() error {
	names := logColumns
	if m.Kind == "spans" {
		names = spanColumns
	} else if m.Kind != "logs" {
		return fmt.Errorf("%w: block %s of unknown kind %q", ErrCorrupt, m.Name, m.Kind)
	}
	for gi := range m.Groups {
		g := &m.Groups[gi]
		if len(g.Lens) != len(names) || len(g.CRCs) != len(names) {
			return fmt.Errorf("%w: block %s group %d has %d columns, want %d", ErrCorrupt, m.Name, gi, len(g.Lens), len(names))
		}
		g.Columns = make([]colMeta, len(names))
		off := g.Off
		for i, n := range names {
			g.Columns[i] = colMeta{Name: n, Off: off, Len: g.Lens[i], CRC: g.CRCs[i]}
			off += g.Lens[i]
		}
	}
	return nil
}

// groupColumns checks every column checksum of a group and decompresses it.
func groupColumns(data io.ReaderAt, m *blockMeta, g *groupMeta) (map[string]*dec, error) {
	cols := make(map[string]*dec, len(g.Columns))
	for _, c := range g.Columns {
		d, err := columnData(data, m, c)
		if err != nil {
			return nil, err
		}
		cols[c.Name] = d
	}
	return cols, nil
}

// readBlockRange reads [off, off+n) of a block; a short read means the
// block is truncated.
func readBlockRange(data io.ReaderAt, m *blockMeta, off, n int64, what string) ([]byte, error) {
	return readBlockRangeTo(data, m, off, n, nil, func() string { return what })
}

// inMemory is a block source that holds its bytes already (a row group
// read at once, the ranges fetched from the blob store): view hands out
// [off, off+n) without copying, ok false when the bytes are not there.
type inMemory interface {
	view(off, n int64) (b []byte, ok bool)
}

// readBlockRangeTo is readBlockRange reading into buf's storage when it is
// large enough; from a source in memory it returns a view instead, which
// the caller must not keep past the source nor write to. what names the
// range in errors, built only then.
func readBlockRangeTo(data io.ReaderAt, m *blockMeta, off, n int64, buf []byte, what func() string) ([]byte, error) {
	if m.Size > 0 && off+n > m.Size {
		return nil, fmt.Errorf("%w: block %s %s beyond the end", ErrCorrupt, m.Name, what())
	}
	if mem, ok := data.(inMemory); ok {
		if b, ok := mem.view(off, n); ok {
			return b, nil
		}
	}
	b := buf[:0]
	if int64(cap(b)) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	if k, err := data.ReadAt(b, off); k != len(b) {
		// An I/O error (a blob store's, a disk's) is not a corrupt block;
		// an early end of the data is.
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("block %s %s: %w", m.Name, what(), err)
		}
		return nil, fmt.Errorf("%w: block %s %s: short read: %v", ErrCorrupt, m.Name, what(), err)
	}
	return b, nil
}

// groupData reads a row group's columns with one positioned read (they lie
// back to back): a lookup costs one read per group it needs, from a file
// or a blob store, not one per column.
func groupData(data io.ReaderAt, m *blockMeta, g *groupMeta) (io.ReaderAt, error) {
	gd, _, err := groupDataTo(data, m, g, nil)
	return gd, err
}

// groupDataTo is groupData reading into buf's storage when it is large
// enough; it returns the storage for the next group's read. The reader it
// returns is valid until buf is reused.
func groupDataTo(data io.ReaderAt, m *blockMeta, g *groupMeta, buf []byte) (io.ReaderAt, []byte, error) {
	if len(g.Columns) == 0 {
		return data, buf, nil
	}
	r := groupRange(g)
	b, err := readBlockRangeTo(data, m, r.off, r.n, buf, func() string { return "row group" })
	if err != nil {
		return nil, buf, err
	}
	if _, mem := data.(inMemory); !mem {
		buf = b
	}
	return groupSpan{b, r.off}, buf, nil
}

// groupSpan is a row group's bytes read at off in its block.
type groupSpan struct {
	b   []byte
	off int64
}

func (s groupSpan) ReadAt(p []byte, off int64) (int, error) {
	i := off - s.off
	if i < 0 || i > int64(len(s.b)) {
		return 0, io.EOF
	}
	n := copy(p, s.b[i:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s groupSpan) view(off, n int64) ([]byte, bool) {
	i := off - s.off
	if i < 0 || n < 0 || i+n > int64(len(s.b)) {
		return nil, false
	}
	return s.b[i : i+n : i+n], true
}

// columnData reads one column and checks its checksum.
func columnData(data io.ReaderAt, m *blockMeta, c colMeta) (*dec, error) {
	return columnDataTo(data, m, c, nil)
}

// columnDataTo is columnData decompressing into the storage of sc (nil:
// fresh memory). The decoder's bytes are sc's until sc is reused: strings
// taken from it must be copies (dec.view false), as the block decoders'
// are.
func columnDataTo(data io.ReaderAt, m *blockMeta, c colMeta, sc *colScratch) (*dec, error) {
	var zbuf, rawBuf, joinBuf []byte
	if sc != nil {
		zbuf, rawBuf, joinBuf = sc.z, sc.raw, sc.joined
	}
	z, err := readBlockRangeTo(data, m, c.Off, c.Len, zbuf, func() string { return "column " + c.Name })
	if err != nil {
		return nil, err
	}
	if sc != nil {
		if _, mem := data.(inMemory); !mem {
			sc.z = z[:0]
		}
	}
	if crc32.Checksum(z, castagnoli) != c.CRC {
		return nil, fmt.Errorf("%w: block %s column %s checksum mismatch", ErrCorrupt, m.Name, c.Name)
	}
	raw, err := zdec.DecodeAll(z, rawBuf[:0])
	if err != nil {
		return nil, fmt.Errorf("%w: block %s column %s: %w", ErrCorrupt, m.Name, c.Name, err)
	}
	if sc != nil {
		sc.raw = raw[:0]
	}
	if n := idWidth(c.Name); n > 0 && m.Format >= 2 {
		if raw, err = joinIDsTo(joinBuf[:0], raw, n); err != nil {
			return nil, fmt.Errorf("%w: block %s column %s: %w", ErrCorrupt, m.Name, c.Name, err)
		}
		if sc != nil {
			sc.joined = raw[:0]
		}
	}
	return &dec{b: raw}, nil
}

// colScratch is the reusable memory of one column's decoding: its
// compressed bytes, decompressed bytes, and (id columns) joined ids.
type colScratch struct{ z, raw, joined []byte }

// groupScratch recycles the column buffers of row-group decodes: a query
// decompresses every column of hundreds of groups, and allocating each
// anew made the allocator and the garbage collector a third of a field
// filter's CPU. The decoders copy every string they return, so a group's
// buffers are free once it is decoded.
type groupScratch struct {
	cols  []colScratch // by column index
	group []byte       // the group's bytes (groupDataTo)
}

var groupScratchPool = sync.Pool{New: func() any { return new(groupScratch) }}

// maxScratchBytes: buffers larger than this (an outsized group) are not
// kept for reuse, so one huge group does not pin its memory in the pool.
const maxScratchBytes = 4 << 20

func getGroupScratch(columns int) *groupScratch {
	gs := groupScratchPool.Get().(*groupScratch)
	if len(gs.cols) < columns {
		gs.cols = append(gs.cols, make([]colScratch, columns-len(gs.cols))...)
	}
	return gs
}

func putGroupScratch(gs *groupScratch) {
	if cap(gs.group) > maxScratchBytes {
		gs.group = nil
	}
	for i := range gs.cols {
		c := &gs.cols[i]
		for _, b := range []*[]byte{&c.z, &c.raw, &c.joined} {
			if cap(*b) > maxScratchBytes {
				*b = nil
			}
		}
	}
	groupScratchPool.Put(gs)
}

// checkBlock verifies every checksum of a block.
func checkBlock(data io.ReaderAt, m *blockMeta) error {
	for i := range m.Groups {
		if _, err := groupColumns(data, m, &m.Groups[i]); err != nil {
			return err
		}
	}
	return nil
}

var logColumns = []string{"time", "service", "version", "level", "message", "kind", "trace", "span", "method",
	"route", "status", "duration_us", "bytes", "caller", "cluster", "datacenter", "merchant", "attrs"}

// sortLogs orders by service then time; it sorts pointers, since moving
// whole records cost more than encoding them.
func sortLogs(logs []*Log) {
	sortByServiceTime(logs, func(l *Log) (string, int64) { return l.Service, l.Time.UnixNano() })
}

// encodeLogBlock writes logs (sorted by service, time) as a block and
// fills meta's statistics.
func encodeLogBlock(logs []*Log, meta *blockMeta) ([]byte, error) {
	return encodeLogGroups(len(logs), func(lo, hi int) []*Log { return logs[lo:hi] }, meta)
}

// encodeLogGroups is encodeLogBlock for n lines that rows hands over one
// row group at a time (rows lo..hi-1): a flush decodes only those from
// the memory table, so one group's lines are decoded at a time, not a
// whole block's (16384 lines, about 5 MB of Log values the collector then
// lets the heap double). The lines rows returned are not used after the
// next call.
func encodeLogGroups(n int, rows func(lo, hi int) []*Log, meta *blockMeta) ([]byte, error) {
	w := newBlockWriter(logColumns)
	c := w.cols
	meta.Kind, meta.Count = "logs", n
	x := newBlockIndex()
	gx := newGroupIndexer()
	for start := 0; start < n; start += groupRows {
		group := rows(start, min(start+groupRows, n))
		var prev int64
		for _, l := range group {
			t := l.Time.UnixNano()
			x.row(t, l.Service, l.TraceID)
			gx.row(l)
			if l.MerchantID != "" {
				x.merchants.add(l.MerchantID)
			}
			c[0].varint(t - prev)
			prev = t
			c[1].str(l.Service)
			c[2].str(l.Version)
			c[3].str(l.Level)
			c[4].str(l.Message)
			c[5].str(l.Kind)
			putID(&c[6], l.TraceID, 16)
			putID(&c[7], l.SpanID, 8)
			c[8].str(l.Method)
			c[9].str(l.Route)
			c[10].varint(int64(l.Status))
			c[11].varint(int64(math.Round(l.DurationMS * 1000)))
			c[12].varint(l.Bytes)
			c[13].str(l.Caller)
			c[14].str(l.Cluster)
			c[15].str(l.Datacenter)
			c[16].str(l.MerchantID)
			c[17].attrs(l.Attrs)
		}
		var g groupMeta
		gx.finish(&g)
		w.endGroup(len(group), x.endGroup(), g)
	}
	x.finish(meta)
	return w.finish(meta)
}

func decodeLogBlock(data io.ReaderAt, m *blockMeta) ([]Log, error) {
	return decodeLogRows(data, m, "")
}

// decodeLogRows decodes a block's lines; with traceID set, only that
// trace's lines: row groups whose bloom filter rules the trace out are not
// touched, and in the others the trace column is read first; the other
// columns are decompressed and walked only if a row matches, materialising
// nothing for the rows that do not.
func decodeLogRows(data io.ReaderAt, m *blockMeta, traceID string) ([]Log, error) {
	return decodeLogRowsWhere(data, m, traceID, nil)
}

// decodeLogRowsWhere is decodeLogRows that also tests f on each row's raw
// columns first and materialises only the rows f keeps.
func decodeLogRowsWhere(data io.ReaderAt, m *blockMeta, traceID string, f *rowFilter) ([]Log, error) {
	if f != nil && f.page != nil {
		return decodeLogPage(data, m, traceID, f)
	}
	var out []Log
	key := hashKey(traceID)
	gs := getGroupScratch(len(logColumns))
	defer putGroupScratch(gs)
	for gi := range m.Groups {
		g := &m.Groups[gi]
		if !logGroupWanted(m, g, key, traceID, f) {
			continue
		}
		gd, buf, err := groupDataTo(data, m, g, gs.group)
		if err != nil {
			return nil, err
		}
		gs.group = buf
		if out, err = decodeLogGroupTo(out, gd, m, g, traceID, f, gs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeLogPage is decodeLogRowsWhere for a page of the newest lines
// (f.page): it walks the groups newest last-written first (a service's
// groups are in time order) and skips every group, and every row, older
// than the page's oldest line so far, which ends a block's decoding once
// its newer groups have filled the page. It returns only the lines the
// page accepts.
func decodeLogPage(data io.ReaderAt, m *blockMeta, traceID string, f *rowFilter) ([]Log, error) {
	var out []Log
	key := hashKey(traceID)
	// A copy: a retried block must not count its lines twice.
	page := f.page.clone()
	gs := getGroupScratch(len(logColumns))
	defer putGroupScratch(gs)
	for gi := len(m.Groups) - 1; gi >= 0; gi-- {
		g := &m.Groups[gi]
		floor := page.floor()
		if m.skipIndexed() && g.MaxT < floor || !logGroupWanted(m, g, key, traceID, f) {
			continue
		}
		gd, buf, err := groupDataTo(data, m, g, gs.group)
		if err != nil {
			return nil, err
		}
		gs.group = buf
		fg := *f
		fg.from = max(f.from, floor)
		n := len(out)
		if out, err = decodeLogGroupTo(out, gd, m, g, traceID, &fg, gs); err != nil {
			return nil, err
		}
		kept := out[:n]
		for i := n; i < len(out); i++ {
			if page.accept(&out[i]) {
				page.add(out[i].Time.UnixNano())
				kept = append(kept, out[i])
			}
		}
		out = kept
	}
	return out, nil
}

// logGroupWanted is whether a read of the lines of traceID (all when
// empty) that f keeps decodes group g; a cold read fetches just these.
func logGroupWanted(m *blockMeta, g *groupMeta, key bloomKey, traceID string, f *rowFilter) bool {
	return (traceID == "" || g.Trace.has(key)) && (f == nil || f.plan == nil || f.plan.mayMatch(m, g))
}

func decodeLogGroup(out []Log, data io.ReaderAt, m *blockMeta, g *groupMeta, traceID string, f *rowFilter) ([]Log, error) {
	gs := getGroupScratch(len(logColumns))
	defer putGroupScratch(gs)
	return decodeLogGroupTo(out, data, m, g, traceID, f, gs)
}

// decodeLogGroupTo is decodeLogGroup decompressing into gs's buffers
// (gs.group is not touched: data may be it).
func decodeLogGroupTo(out []Log, data io.ReaderAt, m *blockMeta, g *groupMeta, traceID string, f *rowFilter, gs *groupScratch) ([]Log, error) {
	column := func(i int) (*dec, error) {
		for _, c := range g.Columns {
			if c.Name == logColumns[i] {
				return columnDataTo(data, m, c, &gs.cols[i])
			}
		}
		return nil, fmt.Errorf("%w: block %s lacks column %s", ErrCorrupt, m.Name, logColumns[i])
	}
	var take []bool
	var trace dec
	if traceID != "" {
		tc, err := column(6)
		if err != nil {
			return nil, err
		}
		take = make([]bool, g.Rows)
		found := false
		trace = *tc // the materialising pass below reads it again
		for i := range take {
			if tc.idEquals(16, traceID) {
				take[i], found = true, true
			}
		}
		if tc.err != nil {
			return nil, fmt.Errorf("%w: block %s column trace: %w", ErrCorrupt, m.Name, tc.err)
		}
		if !found {
			return out, nil
		}
	}
	// Columns are decompressed when first needed: the filter's first, the
	// others only if a row passes it.
	col := make([]*dec, len(logColumns))
	if traceID != "" {
		col[6] = &trace
	}
	need := func(idx ...int) error {
		for _, i := range idx {
			if col[i] != nil {
				continue
			}
			d, err := column(i)
			if err != nil {
				return err
			}
			col[i] = d
		}
		return nil
	}
	if f != nil {
		// A first pass over copies of the few columns the filter reads;
		// the rows it rejects are skipped below without being decoded.
		if take == nil {
			take = make([]bool, g.Rows)
			for i := range take {
				take[i] = true
			}
		}
		if err := need(0, 1, 10); err != nil {
			return nil, err
		}
		tc, sc, stc := *col[0], *col[1], *col[10]
		var mc, ac dec
		if len(f.contains) > 0 {
			if err := need(4, 17); err != nil {
				return nil, err
			}
			mc, ac = *col[4], *col[17]
		}
		found := false
		var t int64
		for i := 0; i < g.Rows; i++ {
			t += tc.varint()
			svc, st := sc.rawStr(), stc.varint()
			var msg, attrs []byte
			if len(f.contains) > 0 {
				msg = mc.rawStr()
				before := ac.b
				ac.skipAttrs()
				attrs = before[:len(before)-len(ac.b)]
			}
			take[i] = take[i] && f.keeps(t, svc, msg, st, attrs)
			found = found || take[i]
		}
		if tc.err == nil && sc.err == nil && mc.err == nil && stc.err == nil && ac.err == nil && !found {
			return out, nil
		}
	}
	all := make([]int, len(logColumns))
	for i := range all {
		all[i] = i
	}
	if err := need(all...); err != nil {
		return nil, err
	}
	in := func(i int) *interned { return &interned{d: col[i], seen: map[string]string{}} }
	svc, ver, lvl, msg, kind, meth, route, caller, cluster, dc, merch :=
		in(1), in(2), in(3), in(4), in(5), in(8), in(9), in(13), in(14), in(15), in(16)
	strs := []*interned{svc, ver, lvl, msg, kind, meth, route, caller, cluster, dc, merch}
	if take == nil {
		out = slices.Grow(out, g.Rows)
	}
	rows := g.Rows
	if take != nil {
		// Nothing after the last taken row is read.
		for rows > 0 && !take[rows-1] {
			rows--
		}
	}
	var t int64
	for i := 0; i < rows; i++ {
		t += col[0].varint()
		if take != nil && !take[i] {
			// Skip the run of rejected rows column by column.
			j := i + 1
			for j < rows && !take[j] {
				t += col[0].varint()
				j++
			}
			k := j - i
			for _, s := range strs {
				s.d.skipStrs(k)
			}
			col[6].skipIDs(16, k)
			col[7].skipIDs(8, k)
			col[10].skipVarints(k)
			col[11].skipVarints(k)
			col[12].skipVarints(k)
			for range k {
				col[17].skipAttrs()
			}
			i = j - 1
			continue
		}
		var l Log
		l.Time = time.Unix(0, t).UTC()
		l.Service, l.Version, l.Level, l.Message, l.Kind = svc.str(), ver.str(), lvl.str(), msg.str(), kind.str()
		l.TraceID, l.SpanID = getID(col[6], 16), getID(col[7], 8)
		l.Method, l.Route = meth.str(), route.str()
		l.Status = int(col[10].varint())
		l.DurationMS = float64(col[11].varint()) / 1000
		l.Bytes = col[12].varint()
		l.Caller, l.Cluster, l.Datacenter, l.MerchantID = caller.str(), cluster.str(), dc.str(), merch.str()
		l.Attrs = col[17].attrs()
		out = append(out, l)
	}
	for i, d := range col {
		if d.err != nil {
			return nil, fmt.Errorf("%w: block %s column %s: %w", ErrCorrupt, m.Name, logColumns[i], d.err)
		}
	}
	return out, nil
}

// groupColumn checks and decompresses one column of a group.
func groupColumn(data io.ReaderAt, m *blockMeta, g *groupMeta, name string) (*dec, error) {
	for _, c := range g.Columns {
		if c.Name == name {
			return columnData(data, m, c)
		}
	}
	return nil, fmt.Errorf("%w: block %s lacks column %s", ErrCorrupt, m.Name, name)
}

// rawStr returns the next string's bytes without copying them.
func (d *dec) rawStr() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = errShort
		}
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

// rowFilter is the part of a query that can be tested on a row's raw
// columns before the row is decoded, so rows it rejects are never
// materialised. It may keep rows the query then rejects (the query tests
// every row it gets), never reject one the query would keep.
type rowFilter struct {
	from, to  int64
	service   string
	hasStatus bool
	status    int64
	contains  []byte
	plan      *groupPlan // rules row groups out by their indexes
	page      *pageBound // a page of the newest lines: skip what cannot enter it
}

// pageBound tracks the times of the want newest lines a query has
// accepted so far: a line older than the oldest of them cannot enter the
// page, nor can a row group whose newest line is.
type pageBound struct {
	want   int
	accept func(*Log) bool // the query's whole test (cursor, fields, retention)
	times  []int64         // a min-heap of at most want times
}

// floor is the time below which no line can enter the page (MinInt64
// until want lines are in).
func (p *pageBound) floor() int64 {
	if len(p.times) < p.want {
		return math.MinInt64
	}
	return p.times[0]
}

func (p *pageBound) add(t int64) {
	h := p.times
	if len(h) == p.want {
		if t <= h[0] {
			return
		}
		h[0] = t
	} else {
		h = append(h, t)
		for i := len(h) - 1; i > 0; {
			up := (i - 1) / 2
			if h[up] <= h[i] {
				break
			}
			h[up], h[i] = h[i], h[up]
			i = up
		}
		p.times = h
		return
	}
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (p *pageBound) clone() *pageBound {
	c := *p
	c.times = slices.Clone(p.times)
	return &c
}

func (q *Query) rowFilter() *rowFilter {
	f := &rowFilter{from: math.MinInt64, to: math.MaxInt64, service: q.Service, contains: []byte(q.Contains), plan: newGroupPlan(q)}
	if !q.From.IsZero() {
		f.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		f.to = q.To.UnixNano()
	}
	for _, m := range q.Where {
		// status=V holds only for the row whose status prints as V.
		if n, err := strconv.Atoi(m.Value); m.Key == "status" && !m.Not && err == nil {
			f.hasStatus, f.status = true, int64(n)
		}
	}
	return f
}

func (f *rowFilter) keeps(t int64, service, message []byte, status int64, attrs []byte) bool {
	if t < f.from || t >= f.to || f.service != "" && string(service) != f.service || f.hasStatus && status != f.status {
		return false
	}
	// The attributes' raw bytes hold every value whole, so a phrase in a
	// value is found there (and sometimes a phrase that is not: kept).
	return len(f.contains) == 0 || bytes.Contains(message, f.contains) || bytes.Contains(attrs, f.contains)
}

func (d *dec) skipStr() {
	n := d.uvarint()
	if d.err != nil {
		return
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return
	}
	d.b = d.b[n:]
}

// skipStrs skips the next k strings.
func (d *dec) skipStrs(k int) {
	b := d.b
	for ; k > 0; k-- {
		var n uint64
		if len(b) > 0 && b[0] < 0x80 {
			n, b = uint64(b[0]), b[1:]
		} else {
			v, w := binary.Uvarint(b)
			if w <= 0 {
				d.err = errShort
				return
			}
			n, b = v, b[w:]
		}
		if n > uint64(len(b)) {
			d.err = errShort
			return
		}
		b = b[n:]
	}
	d.b = b
}

// skipVarints skips the next k varints.
func (d *dec) skipVarints(k int) {
	b := d.b
	for ; k > 0; k-- {
		i := 0
		for i < len(b) && b[i] >= 0x80 {
			i++
		}
		if i >= len(b) || i >= binary.MaxVarintLen64 {
			d.err = errShort
			return
		}
		b = b[i+1:]
	}
	d.b = b
}

// skipIDs skips the next k ids of n bytes (see putID).
func (d *dec) skipIDs(n, k int) {
	for ; k > 0 && d.err == nil; k-- {
		d.skipID(n)
	}
}

func (d *dec) skipID(n int) {
	if d.err != nil {
		return
	}
	if len(d.b) < 1 {
		d.err = errShort
		return
	}
	flag := d.b[0]
	d.b = d.b[1:]
	if flag == 0 {
		d.skipStr()
		return
	}
	if len(d.b) < n {
		d.err = errShort
		return
	}
	d.b = d.b[n:]
}

func (d *dec) skipAttrs() {
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		d.skipStr()
		d.skipStr()
	}
}

// idEquals reads the next id and compares it with a hex id without
// allocating.
func (d *dec) idEquals(n int, want string) bool {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return false
	}
	flag := d.b[0]
	if flag == 0 {
		d.b = d.b[1:]
		l := d.uvarint()
		if d.err != nil || l > uint64(len(d.b)) {
			d.err = errShort
			return false
		}
		eq := string(d.b[:l]) == want
		d.b = d.b[l:]
		return eq
	}
	if len(d.b) < 1+n {
		d.err = errShort
		return false
	}
	raw := d.b[1 : 1+n]
	d.b = d.b[1+n:]
	if len(want) != 2*n {
		return false
	}
	const hexd = "0123456789abcdef"
	for i, c := range raw {
		if want[2*i] != hexd[c>>4] || want[2*i+1] != hexd[c&15] {
			return false
		}
	}
	return true
}

var spanColumns = []string{"start", "duration", "trace", "span", "parent", "name", "service", "version", "kind", "status", "status_text", "attrs"}

func sortSpans(spans []*Span) {
	sortByServiceTime(spans, func(s *Span) (string, int64) { return s.Service, s.Start.UnixNano() })
}

// sortByServiceTime orders records by service, then time, keeping the
// order of equal ones. Records arrive grouped by few services and mostly
// in time order, so they are bucketed by service (one map lookup each
// instead of a string comparison per comparison) and each bucket is
// sorted only if it is not already.
func sortByServiceTime[T any](recs []*T, key func(*T) (string, int64)) {
	type keyed struct {
		t   int64
		rec *T
	}
	buckets := map[string][]keyed{}
	for _, r := range recs {
		svc, t := key(r)
		buckets[svc] = append(buckets[svc], keyed{t, r})
	}
	byTime := func(a, b keyed) int { return cmp.Compare(a.t, b.t) }
	out := recs[:0]
	for _, svc := range sortedKeys(buckets) {
		b := buckets[svc]
		if !slices.IsSortedFunc(b, byTime) {
			slices.SortStableFunc(b, byTime)
		}
		for _, k := range b {
			out = append(out, k.rec)
		}
	}
}

func encodeSpanBlock(spans []*Span, meta *blockMeta) ([]byte, error) {
	w := newBlockWriter(spanColumns)
	c := w.cols
	meta.Kind, meta.Count = "spans", len(spans)
	x := newBlockIndex()
	for start := 0; start < len(spans); start += groupRows {
		group := spans[start:min(start+groupRows, len(spans))]
		var prev int64
		for _, s := range group {
			t := s.Start.UnixNano()
			x.row(t, s.Service, s.TraceID)
			c[0].varint(t - prev)
			prev = t
			c[1].varint(s.End.UnixNano() - t)
			putID(&c[2], s.TraceID, 16)
			putID(&c[3], s.SpanID, 8)
			putID(&c[4], s.ParentID, 8)
			c[5].str(s.Name)
			c[6].str(s.Service)
			c[7].str(s.Version)
			c[8].str(s.Kind)
			c[9].str(s.Status)
			c[10].str(s.StatusText)
			c[11].attrs(s.Attrs)
		}
		g := groupMeta{MinT: math.MaxInt64, MaxT: math.MinInt64}
		for _, s := range group {
			g.MinT, g.MaxT = min(g.MinT, s.Start.UnixNano()), max(g.MaxT, s.Start.UnixNano())
		}
		w.endGroup(len(group), x.endGroup(), g)
	}
	x.finish(meta)
	return w.finish(meta)
}

// decodeSpanBlock decodes a block's spans; with traceID set, only the row
// groups that may hold it.
func decodeSpanBlock(data io.ReaderAt, m *blockMeta, traceID string) ([]Span, error) {
	var out []Span
	key := hashKey(traceID)
	for gi := range m.Groups {
		g := &m.Groups[gi]
		if traceID != "" && !g.Trace.has(key) {
			continue
		}
		gd, err := groupData(data, m, g)
		if err != nil {
			return nil, err
		}
		cols, err := groupColumns(gd, m, g)
		if err != nil {
			return nil, err
		}
		col := make([]*dec, len(spanColumns))
		for i, n := range spanColumns {
			if col[i] = cols[n]; col[i] == nil {
				return nil, fmt.Errorf("%w: block %s lacks column %s", ErrCorrupt, m.Name, n)
			}
		}
		in := func(i int) *interned { return &interned{d: col[i], seen: map[string]string{}} }
		name, svc, ver, kind, st, stt := in(5), in(6), in(7), in(8), in(9), in(10)
		var t int64
		for i := 0; i < g.Rows; i++ {
			var s Span
			t += col[0].varint()
			s.Start = time.Unix(0, t).UTC()
			s.End = time.Unix(0, t+col[1].varint()).UTC()
			s.TraceID, s.SpanID, s.ParentID = getID(col[2], 16), getID(col[3], 8), getID(col[4], 8)
			s.Name, s.Service, s.Version, s.Kind, s.Status, s.StatusText = name.str(), svc.str(), ver.str(), kind.str(), st.str(), stt.str()
			s.Attrs = col[11].attrs()
			if traceID == "" || s.TraceID == traceID {
				out = append(out, s)
			}
		}
		for i, d := range col {
			if d.err != nil {
				return nil, fmt.Errorf("%w: block %s column %s: %w", ErrCorrupt, m.Name, spanColumns[i], d.err)
			}
		}
	}
	return out, nil
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
