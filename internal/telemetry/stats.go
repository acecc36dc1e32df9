package telemetry

import (
	"io/fs"
	"path/filepath"
)

// Stats is the store's size by tier.
type Stats struct {
	HotBytes     int64             `json:"hot_bytes"`
	HotBlocks    int               `json:"hot_blocks"`
	ColdBytes    int64             `json:"cold_bytes"`
	ColdBlocks   int               `json:"cold_blocks"`
	CacheBytes   int64             `json:"cache_bytes"`
	WALBytes     int64             `json:"wal_bytes"`
	MemoryBytes  int               `json:"memory_bytes"`
	MemoryLines  int               `json:"memory_records"`
	Records      int64             `json:"records"`
	HotPartition []string          `json:"hot_partitions"`
	ColdPart     []string          `json:"cold_partitions"`
	Corrupt      map[string]string `json:"corrupt,omitempty"`
	// BlocksRead counts block reads since start: a trace lookup should add
	// only the few blocks whose bloom filter matches.
	BlocksRead int64 `json:"blocks_read"`
	// BlobReads and BlobBytesRead count the GETs of cold blocks from the
	// blob store (whole blocks and ranges of row groups) and their bytes.
	BlobReads     int64 `json:"blob_reads"`
	BlobBytesRead int64 `json:"blob_bytes_read"`
	// NeedleReads counts cold blocks a phrase search answered from their
	// needle files, without the blob store; NeedleBytes is those files'
	// size on local disk.
	NeedleReads int64 `json:"needle_reads"`
	NeedleBytes int64 `json:"needle_bytes"`
}

// Stats reports bytes per tier and blocks not served because corrupt.
func (s *Embedded) Stats() Stats {
	s.mu.RLock()
	var st Stats
	hp, cp := map[string]bool{}, map[string]bool{}
	for _, m := range s.hot {
		st.HotBytes += m.Size
		st.HotBlocks++
		st.Records += int64(m.Count)
		hp[m.Partition] = true
	}
	for _, m := range s.cold {
		st.ColdBytes += m.Size
		st.ColdBlocks++
		st.Records += int64(m.Count)
		cp[m.Partition] = true
	}
	for _, m := range append(append([]*memtable{}, s.frozen...), s.active) {
		st.MemoryLines += m.lines
	}
	st.Records += int64(st.MemoryLines)
	st.MemoryBytes = s.memSize
	st.BlocksRead = s.blocksRead.Load()
	st.BlobReads, st.BlobBytesRead = s.blobReads.Load(), s.blobBytes.Load()
	if len(s.corrupt) > 0 {
		st.Corrupt = map[string]string{}
		for k, v := range s.corrupt {
			st.Corrupt[k] = v
		}
	}
	s.mu.RUnlock()
	st.HotPartition, st.ColdPart = sortedKeys(hp), sortedKeys(cp)
	st.CacheBytes = dirSize(s.cache)
	st.WALBytes = dirSize(s.walDir)
	st.NeedleReads, st.NeedleBytes = s.needleReads.Load(), dirSize(s.needleDir)
	return st
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
