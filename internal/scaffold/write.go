package scaffold

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// writeAtomic replaces name under root with data: it writes a temporary file
// beside it, syncs it and renames it over name, so a crash leaves either the
// old file or the new one, never half of one. All paths go through os.Root,
// which refuses any that resolve outside the repository, symlinks included.
func writeAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	if err := checkLocal(name); err != nil {
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".pave-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// modeOf returns the permission bits of an existing file, or def.
func modeOf(root *os.Root, name string, def fs.FileMode) fs.FileMode {
	if fi, err := root.Lstat(name); err == nil && fi.Mode().IsRegular() {
		return fi.Mode().Perm()
	}
	return def
}

// readExisting returns the file's content and whether it exists. A path that
// is not a regular file (a directory, a symlink leaving the repository) is an
// error: the upgrade must not write through it.
func readExisting(root *os.Root, name string) ([]byte, bool, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s is a %s, not a regular file: replace it with a file or delete it", name, fi.Mode().Type())
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	return data, true, nil
}
