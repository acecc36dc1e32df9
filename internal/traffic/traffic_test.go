package traffic

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePercent(t *testing.T) {
	for in, want := range map[string]int64{
		"99.99": 999_900, "0.01": 100, "1": 10_000, "100": 1_000_000, "0.0001": 1,
		"50%": 500_000, " 2.5 ": 25_000, ".5": 5_000, "7.": 70_000, "0": 0, "-1": -10_000,
	} {
		got, err := ParsePercent(in)
		if err != nil || got != want {
			t.Errorf("ParsePercent(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "abc", "1.00001", "1e2", "1,5", "1000", "--1", "0x10", "+1"} {
		if _, err := ParsePercent(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePercent(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestFormatPercent(t *testing.T) {
	for ppm, want := range map[int64]string{990_000: "99", 100: "0.01", 1: "0.0001", 125_000: "12.5", 0: "0", -10_000: "-1"} {
		if got := FormatPercent(ppm); got != want {
			t.Errorf("FormatPercent(%d) = %q, want %q", ppm, got, want)
		}
	}
}

func TestParseAssignments(t *testing.T) {
	w, err := ParseAssignments([]string{"v1=99.99", "v2=0.01"})
	if err != nil || w["v1"] != 999_900 || w["v2"] != 100 {
		t.Fatalf("got %v, %v", w, err)
	}
	if w.String() != "v1=99.99 v2=0.01" {
		t.Errorf("String() = %q", w.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"v1=99", "v2=2"}, "sum to 101%"},
		{[]string{"v1=101", "v2=-1"}, "more than 100%"},
		{[]string{"v1=99", "v2=-1"}, "negative"},
		{[]string{"v1"}, "want VERSION=PERCENT"},
		{[]string{"v1=x"}, "not a percentage"},
		{[]string{"v1=50", "v1=50"}, "given twice"},
		{[]string{"V1=100"}, "version name"},
		{nil, "no versions"},
	} {
		_, err := ParseAssignments(tc.args)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAssignments(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// FuzzParsePercent checks that any accepted string round-trips through
// FormatPercent and stays within ±1000%.
func FuzzParsePercent(f *testing.F) {
	for _, s := range []string{"99.99", "0.01", "1", "100", "-0.5", ".", "1.00001", "abc", "50%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePercent(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if p > 10_000_000 || p < -10_000_000 {
			t.Fatalf("%q parsed to %d ppm, out of range", s, p)
		}
		back, err := ParsePercent(FormatPercent(p))
		if err != nil || back != p {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, p, FormatPercent(p), back, err)
		}
	})
}

func TestApportion(t *testing.T) {
	for _, c := range []struct {
		w     []int64
		total int64
		want  []int64
	}{
		{[]int64{1, 1, 1}, 100, []int64{34, 33, 33}},
		{[]int64{2, 1}, Total, []int64{666_667, 333_333}},
		{[]int64{0, 5}, 100, []int64{0, 100}},
		{[]int64{0, 0}, 100, []int64{0, 0}},
	} {
		got := Apportion(c.w, c.total)
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Apportion(%v, %d) = %v, want %v", c.w, c.total, got, c.want)
				break
			}
		}
	}
}
