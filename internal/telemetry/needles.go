package telemetry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Needle files: the rare lines of a cold block, kept on local disk.
//
// A cold block answers a phrase with ranged GETs of the row groups its word
// filters leave open, one GET per block at least. A rare phrase's lines lie
// in about as many blocks as it has lines (lines are sorted by service,
// then time), so over S3 a phrase of 20 lines cost 15–18 GETs: a round
// trip, the store's time for each, and a request charge each. So when a
// block moves to the cold tier, the lines holding its rarest message
// tokens are written to a small local file, with the exact list of those
// tokens. Every line holding a phrase has each of the phrase's keys
// (eachNeedleKey); when one of them is on a block's list, all of the
// block's lines that can match are in its needle file, and the block is
// answered from the local disk without a GET.
//
// What a file holds is bounded: at most needleRows(block) lines and
// needleMaxTokens tokens, picked rarest first (a token whose lines are
// already in costs nothing), whole words before words' edges and those
// on one line only last (see pickNeedles). A block whose messages carry an id on every
// line has more rare tokens than that budget, and its file covers only
// some; a phrase whose tokens are all common is not on any list. Both are
// read from the blob store as before. The files are an index: a missing or
// damaged one sends its block's reads to the blob store, and one is
// rebuilt when its block is next fetched whole.

const (
	// needleShare: a needle file holds at most 1/needleShare of its
	// block's lines (64 of a full block of 16384, 0.4% of the cold tier's
	// lines on local disk), and at least needleMinRows.
	needleShare, needleMinRows = 256, 16
	// needleMaxTokens bounds a block's token list, which is kept in memory
	// (8 bytes a token).
	needleMaxTokens = 256
	// needleMaxToken: longer tokens are not listed (their edges are).
	needleMaxToken = 64
)

var needleMagic = []byte("PAVENDL1")

func needleRows(count int) int { return max(needleMinRows, count/needleShare) }

// needleIndex is a cold block's needle file as the store keeps it in
// memory: its token list and where its lines are.
type needleIndex struct {
	path   string
	tokens []uint64 // sorted, maphash of kind+token with the store's seed
	off    int64    // of the lines' block within the file
	meta   *blockMeta
}

// needleKeyOf is kind+token under seed: keyed with a seed of this
// process, so no one writing log lines can make a common token collide
// with a listed one (which would hide that token's other lines).
func needleKeyOf(seed maphash.Seed, kind byte, tok string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(kind)
	h.WriteString(tok)
	return h.Sum64()
}

func (n *needleIndex) has(k uint64) bool {
	_, ok := slices.BinarySearch(n.tokens, k)
	return ok
}

// pickNeedles chooses a block's needle lines: the rows holding its rarest
// message keys, within the budget. It returns the rows (in block order)
// and the keys ("W", "P" or "S" then the token) they cover.
func pickNeedles(logs []Log) (rows []int, keys []string) {
	budget := needleRows(len(logs))
	// Keys are counted by their FNV hash: two tokens sharing one count as
	// one key, whose rows then hold both, so listing either stays true.
	type keyRows struct {
		n     int
		rows  []int32
		whole bool // a whole word ('W'), not a word's edge
	}
	byKey := map[uint64]*keyRows{}
	perMsg := map[string][]uint64{} // a message's distinct keys, for repeated messages
	whole := map[uint64]bool{}      // the keys that are whole words
	keysOf := func(msg string) []uint64 {
		if ks, ok := perMsg[msg]; ok {
			return ks
		}
		var ks []uint64
		eachWordKey(msg, func(kind byte, tok string) {
			if len(tok) <= needleMaxToken {
				ks = append(ks, tokenHash(kind, tok))
				if kind == 'W' {
					whole[tokenHash(kind, tok)] = true
				}
			}
		})
		slices.Sort(ks)
		ks = slices.Compact(ks)
		if len(perMsg) < 4096 {
			perMsg[msg] = ks
		}
		return ks
	}
	for i := range logs {
		for _, k := range keysOf(logs[i].Message) {
			kr := byKey[k]
			if kr == nil {
				kr = &keyRows{whole: whole[k]}
				byKey[k] = kr
			}
			kr.n++
			switch {
			case kr.n <= budget:
				kr.rows = append(kr.rows, int32(i))
			case kr.rows != nil:
				kr.rows = nil // too common to list: forget its rows
			}
		}
	}
	var rare []uint64
	for k, kr := range byKey {
		if kr.n <= budget {
			rare = append(rare, k)
		}
	}
	// Whole words first, then words' edges, and keys on one line only
	// last; rarest first within each. Where every message carries an id,
	// the ids are more than the budget holds, and their edges (four hex
	// digits or so) recur by chance on two or three lines: taking those
	// first would fill the file with a random few ids before the words
	// that recur on a few lines (an error code, a rule) that a search for
	// a rare event names. Ties in hash order, so a block's file is the
	// same whenever it is built.
	rank := func(kr *keyRows) int {
		switch {
		case kr.n == 1:
			return 2
		case kr.whole:
			return 0
		}
		return 1
	}
	slices.SortFunc(rare, func(a, b uint64) int {
		ka, kb := byKey[a], byKey[b]
		if d := rank(ka) - rank(kb); d != 0 {
			return d
		}
		if d := ka.n - kb.n; d != 0 {
			return d
		}
		if a < b {
			return -1
		}
		return 1
	})
	in := make([]bool, len(logs))
	taken := 0
	var chosen []uint64
	for _, k := range rare {
		if len(chosen) == needleMaxTokens {
			break
		}
		added := 0
		for _, r := range byKey[k].rows {
			if !in[r] {
				added++
			}
		}
		if taken+added > budget {
			continue
		}
		for _, r := range byKey[k].rows {
			in[r] = true
		}
		taken += added
		chosen = append(chosen, k)
	}
	if len(chosen) == 0 {
		return nil, nil
	}
	// The names of the chosen keys, from the lines themselves.
	want := map[uint64]bool{}
	for _, k := range chosen {
		want[k] = true
	}
	names := map[uint64]string{}
	for i := range logs {
		if !in[i] {
			continue
		}
		rows = append(rows, i)
		eachWordKey(logs[i].Message, func(kind byte, tok string) {
			if len(tok) > needleMaxToken {
				return
			}
			if h := tokenHash(kind, tok); want[h] && names[h] == "" {
				names[h] = string(kind) + tok
			}
		})
	}
	for _, k := range chosen {
		keys = append(keys, names[k])
	}
	slices.Sort(keys)
	return rows, keys
}

// encodeNeedles is a needle file: needleMagic, the key list's length and
// CRC-32C, the keys one per line, then the lines as a block.
func encodeNeedles(logs []Log, rows []int, keys []string) ([]byte, error) {
	sel := make([]*Log, len(rows))
	for i, r := range rows {
		sel[i] = &logs[r]
	}
	sortLogs(sel)
	var meta blockMeta
	blk, err := encodeLogBlock(sel, &meta)
	if err != nil {
		return nil, err
	}
	list := []byte(strings.Join(keys, "\n"))
	out := make([]byte, 0, len(needleMagic)+8+len(list)+len(blk))
	out = append(out, needleMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(list)))
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(list, castagnoli))
	out = append(out, list...)
	return append(out, blk...), nil
}

// decodeNeedles reads a needle file's keys and the footer of its lines.
func decodeNeedles(data []byte, seed maphash.Seed) (*needleIndex, error) {
	h := len(needleMagic) + 8
	if len(data) < h || !bytes.Equal(data[:len(needleMagic)], needleMagic) {
		return nil, fmt.Errorf("%w: not a needle file", ErrCorrupt)
	}
	n := int(binary.LittleEndian.Uint32(data[len(needleMagic):]))
	if n > len(data)-h {
		return nil, fmt.Errorf("%w: needle list length %d out of range", ErrCorrupt, n)
	}
	list := data[h : h+n]
	if crc32.Checksum(list, castagnoli) != binary.LittleEndian.Uint32(data[len(needleMagic)+4:]) {
		return nil, fmt.Errorf("%w: needle list checksum mismatch", ErrCorrupt)
	}
	meta, err := readBlockMeta(data[h+n:])
	if err != nil {
		return nil, err
	}
	if meta.Kind != "logs" {
		return nil, fmt.Errorf("%w: needle lines are %q", ErrCorrupt, meta.Kind)
	}
	x := &needleIndex{off: int64(h + n), meta: meta}
	for k := range strings.SplitSeq(string(list), "\n") {
		if len(k) < 2 || !strings.ContainsRune("WPS", rune(k[0])) {
			return nil, fmt.Errorf("%w: needle key %q", ErrCorrupt, k)
		}
		x.tokens = append(x.tokens, needleKeyOf(seed, k[0], k[1:]))
	}
	slices.Sort(x.tokens)
	return x, nil
}

func (s *Embedded) needlePath(key string) string {
	return filepath.Join(s.needleDir, filepath.FromSlash(key))
}

// buildNeedles writes the needle file of block m (key partition/name)
// from its bytes and returns it, or nil: a block with no rare tokens gets
// none, and a failure only costs the blob store's reads later, so it is
// logged, not returned. The caller serves the file (s.needles) once the
// block is cold.
func (s *Embedded) buildNeedles(key string, data []byte, m *blockMeta) *needleIndex {
	if s.o.NoNeedles || m.Kind != "logs" {
		return nil
	}
	logs, err := decodeLogBlock(bytes.NewReader(data), m)
	if err != nil {
		s.log.Warn("telemetry: no needle file for block", "block", key, "err", err)
		return nil
	}
	rows, keys := pickNeedles(logs)
	if len(rows) == 0 {
		return nil
	}
	path := s.needlePath(key)
	b, err := encodeNeedles(logs, rows, keys)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		// No fsync: a file torn by a crash fails its checksums and is
		// dropped, and its block read from the blob store.
		tmp := path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
		}
	}
	var x *needleIndex
	if err == nil {
		x, err = decodeNeedles(b, s.needleSeed)
	}
	if err != nil {
		s.log.Warn("telemetry: no needle file for block", "block", key, "err", err)
		os.Remove(path)
		return nil
	}
	x.path = path
	return x
}

// rebuildNeedles gives a cold block fetched whole its needle file when it
// has none (a store whose local disk was replaced, or a block moved
// before needle files existed).
func (s *Embedded) rebuildNeedles(key string, data []byte) {
	s.mu.RLock()
	m, cold := s.cold[key]
	_, have := s.needles[key]
	s.mu.RUnlock()
	if !cold || have {
		return
	}
	x := s.buildNeedles(key, data, m)
	s.mu.Lock()
	_, stillCold := s.cold[key]
	if stillCold {
		// nil when the block has no rare lines: it is not decoded again
		// at its next fetch (until the store restarts).
		s.needles[key] = x
	}
	s.mu.Unlock()
	if !stillCold && x != nil {
		os.Remove(x.path)
	}
}

// loadNeedles reads the needle files of the cold blocks at start and
// removes the others (of blocks expired, or of a move that did not
// commit); with NoNeedles it removes them all.
func (s *Embedded) loadNeedles() {
	if s.o.NoNeedles {
		os.RemoveAll(s.needleDir)
		return
	}
	filepath.WalkDir(s.needleDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.needleDir, path)
		if err != nil {
			return nil
		}
		key := filepath.ToSlash(rel)
		if _, cold := s.cold[key]; !cold {
			os.Remove(path)
			return nil
		}
		b, err := os.ReadFile(path)
		var x *needleIndex
		if err == nil {
			x, err = decodeNeedles(b, s.needleSeed)
		}
		if err != nil {
			s.log.Warn("telemetry: needle file dropped; its block is read from the blob store", "block", key, "err", err)
			os.Remove(path)
			return nil
		}
		x.path = path
		s.needles[key] = x
		return nil
	})
}

// dropNeedles forgets a block's needle file and removes it.
func (s *Embedded) dropNeedles(key string) {
	s.mu.Lock()
	delete(s.needles, key)
	s.mu.Unlock()
	os.Remove(s.needlePath(key))
}

// useNeedles marks the cold blocks whose needle files hold every line of
// theirs the query's phrase can match: one of the phrase's keys is on the
// block's list (so every message holding the phrase is in the file), and
// the attribute filters of every group the query may read rule the phrase
// out of the attributes (which the file does not cover).
func (s *Embedded) useNeedles(blocks []candidate, p *groupPlan) {
	if !p.hasNeedle || len(p.needle.attr) == 0 {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.needles) == 0 {
		return
	}
	var keys []uint64
	eachNeedleKey(p.q.Contains, func(kind byte, tok string) {
		if len(tok) <= needleMaxToken {
			keys = append(keys, needleKeyOf(s.needleSeed, kind, tok))
		}
	})
	for i := range blocks {
		c := &blocks[i]
		if !c.cold {
			continue
		}
		x := s.needles[c.meta.Partition+"/"+c.meta.Name]
		if x == nil || !slices.ContainsFunc(keys, x.has) || !attrsRuledOut(c.meta, p) {
			continue
		}
		c.needles = x
	}
}

// attrsRuledOut is true when no group of m the plan may read can hold the
// phrase in an attribute value, by the groups' attribute word filters.
func attrsRuledOut(m *blockMeta, p *groupPlan) bool {
	if !m.skipIndexed() {
		return false
	}
	for gi := range m.Groups {
		g := &m.Groups[gi]
		if p.mayMatch(m, g) && !lacksSome(g.AttrWords, p.needle.attr, m.Format, g) {
			return false
		}
	}
	return true
}

// readNeedles decodes the lines f keeps from c's needle file. A missing
// or damaged file is dropped; on any failure the caller reads the block
// instead.
func (s *Embedded) readNeedles(c candidate, traceID string, f *rowFilter) ([]Log, error) {
	x := c.needles
	key := c.meta.Partition + "/" + c.meta.Name
	file, err := os.Open(x.path)
	if err != nil {
		s.dropNeedles(key)
		return nil, err
	}
	defer file.Close()
	s.needleReads.Add(1)
	logs, err := decodeLogRowsWhere(io.NewSectionReader(file, x.off, x.meta.Size), x.meta, traceID, f)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		s.log.Warn("telemetry: needle file dropped; its block is read from the blob store", "block", key, "err", err)
		s.dropNeedles(key)
		return nil, err
	}
	return logs, nil
}
