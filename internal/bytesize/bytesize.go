// Package bytesize reads byte counts such as 10GiB. It is a leaf package
// so that small programs (the GOCACHEPROG client) can read the same syntax
// as Pave's settings without importing internal/config.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a byte count such as 500MiB, 10GiB, 2GB or 1048576.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n <= 0 || n*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes with an optional unit, e.g. 10GiB or 500MB", s)
	}
	return int64(n * float64(mult)), nil
}
