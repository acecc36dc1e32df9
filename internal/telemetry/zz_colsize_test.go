package telemetry

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

func TestZZColumnSizes(t *testing.T) {
	root := os.Getenv("PAVE_COLSIZE_DIR")
	if root == "" {
		return
	}
	per := map[string]int64{}
	var rows, total, foot int64
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || filepath.Ext(p) != ".blk" {
			return nil
		}
		b, _ := os.ReadFile(p)
		m, err := readBlockMeta(b)
		if err != nil {
			t.Log(p, err)
			return nil
		}
		if m.Kind != "logs" {
			return nil
		}
		rows += int64(m.Count)
		total += int64(len(b))
		var cols int64
		for _, g := range m.Groups {
			for i, l := range g.Lens {
				per[logColumns[i]] += l
				cols += l
			}
		}
		foot += int64(len(b)) - cols
		return nil
	})
	var names []string
	for n := range per {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return per[names[i]] > per[names[j]] })
	fmt.Printf("rows %d total %.2f B/line footer+overhead %.2f\n", rows, float64(total)/float64(rows), float64(foot)/float64(rows))
	for _, n := range names {
		fmt.Printf("  %-12s %.2f\n", n, float64(per[n])/float64(rows))
	}
}
