package tier

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// The client's tier is trimmed the way the go command trims its own cache:
// a hit refreshes an entry's modification time when it is older than
// UsedInterval (so a hit costs no write most of the time), and now and then
// the least recently used entries are removed until the tier is under its
// bound. Entries used within UsedInterval are never removed: another go
// command may be reading them right now (the go command trusts the
// DiskPath it was given), so a tier of only fresh entries may stay over
// its bound until they age.

// UsedInterval is how stale an entry's modification time may be before a
// hit refreshes it.
const UsedInterval = time.Hour

// MarkUsed refreshes the entry's modification time if it is older than
// UsedInterval, and reports whether the entry exists with the size (-1:
// any).
func (d *Disk) MarkUsed(kind Kind, key string, size int64, now time.Time) bool {
	if CheckKey(key) != nil {
		return false
	}
	p := d.Path(kind, key)
	fi, err := os.Stat(p)
	if err != nil || (size >= 0 && fi.Size() != size) {
		return false
	}
	if now.Sub(fi.ModTime()) > UsedInterval {
		os.Chtimes(p, now, now)
	}
	return true
}

// TrimResult says what a trim did.
type TrimResult struct {
	Ran            bool  // false: the last trim was less than the interval ago
	Before, After  int64 // bytes held
	Removed        int   // files
	KeptRecentUsed int64 // bytes over the bound kept because they were used recently
}

// Trim removes least recently used entries until the tier holds at most
// nine tenths of max bytes (a tenth of room, so the next builds do not trim
// again at once), unless it was trimmed less than interval ago (recorded
// in ROOT/trim.txt, as the go command does).
func (d *Disk) Trim(max int64, interval time.Duration, now time.Time) (TrimResult, error) {
	var r TrimResult
	stamp := filepath.Join(d.root, "trim.txt")
	if b, err := os.ReadFile(stamp); err == nil {
		if t, err := strconv.ParseInt(string(b), 10, 64); err == nil && now.Sub(time.Unix(t, 0)) < interval {
			return r, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	// Claim this trim first: concurrent go commands then skip theirs.
	if err := os.WriteFile(stamp, []byte(strconv.FormatInt(now.Unix(), 10)), 0o644); err != nil {
		return r, err
	}
	r.Ran = true
	type file struct {
		path string
		size int64
		mod  time.Time
	}
	var files []file
	for _, k := range []Kind{AC, CAS} {
		filepath.WalkDir(filepath.Join(d.root, string(k)), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || CheckKey(de.Name()) != nil {
				return nil
			}
			if fi, err := de.Info(); err == nil {
				files = append(files, file{p, fi.Size(), fi.ModTime()})
				r.Before += fi.Size()
			}
			return nil
		})
	}
	r.After = r.Before
	if r.Before <= max {
		return r, nil
	}
	slices.SortFunc(files, func(a, b file) int { return a.mod.Compare(b.mod) })
	target := max - max/10
	for _, f := range files {
		if r.After <= target {
			break
		}
		if now.Sub(f.mod) < UsedInterval {
			r.KeptRecentUsed = r.After - target
			break
		}
		if err := os.Remove(f.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			r.After -= f.size
			r.Removed++
		}
	}
	return r, nil
}
