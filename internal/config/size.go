package config

import "github.com/pave-platform/pave/internal/bytesize"

// ParseSize reads a byte count such as 500MiB, 10GiB, 2GB or 1048576.
func ParseSize(s string) (int64, error) { return bytesize.Parse(s) }
