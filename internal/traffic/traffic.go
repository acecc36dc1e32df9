// Package traffic is the traffic-router seam: how the release engine moves
// a service's traffic between versions. Weights are integers in parts per
// million so that a 0.01% canary step (100 ppm) is exact, and the same type
// serves every provider (the embedded gateway here; Istio and Gateway API
// later, one file each), as Flagger's pkg/router does for meshes.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Total is the sum of a service's weights: 100% in parts per million.
const Total int64 = 1_000_000

// Weights are parts per million of a service's traffic per version; they
// sum to Total (1 ppm = 0.0001%).
type Weights map[string]int64

// Router sets and reads the weights of a service's versions.
type Router interface {
	SetWeights(ctx context.Context, service string, w Weights) error
	Weights(ctx context.Context, service string) (Weights, error)
}

// ErrInvalid marks weights or names that were refused.
var ErrInvalid = errors.New("invalid traffic weights")

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ValidName checks a service or version name: lower-case letters, digits,
// '.', '_' and '-', at most 63 characters, as a DNS label allows (the
// gateway routes SERVICE.localhost).
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", ErrInvalid, kind, name)
	}
	return nil
}

// Validate checks names, signs and the sum.
func (w Weights) Validate() error {
	if len(w) == 0 {
		return fmt.Errorf("%w: no versions given; example: v1=99 v2=1", ErrInvalid)
	}
	var sum int64
	for _, v := range w.Versions() {
		if err := ValidName("version", v); err != nil {
			return err
		}
		p := w[v]
		if p < 0 {
			return fmt.Errorf("%w: version %s has a negative weight (%s%%)", ErrInvalid, v, FormatPercent(p))
		}
		if p > Total {
			return fmt.Errorf("%w: version %s has more than 100%% (%s%%)", ErrInvalid, v, FormatPercent(p))
		}
		sum += p
	}
	if sum != Total {
		return fmt.Errorf("%w: weights sum to %s%%, they must sum to exactly 100%% (%s)", ErrInvalid, FormatPercent(sum), w)
	}
	return nil
}

// Versions returns the version names in order.
func (w Weights) Versions() []string {
	out := make([]string, 0, len(w))
	for v := range w {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// String renders weights as the CLI takes them: "v1=99 v2=1".
func (w Weights) String() string {
	var b strings.Builder
	for i, v := range w.Versions() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v + "=" + FormatPercent(w[v]))
	}
	return b.String()
}

// ParsePercent turns a percent string ("99.99", "0.01", "1", "0.0001")
// into parts per million. At most four decimals are allowed: that is the
// resolution of a part per million.
func ParsePercent(s string) (int64, error) {
	orig := s
	s = strings.TrimSuffix(strings.TrimSpace(s), "%")
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%w: %q is not a percentage; write e.g. 99.5 or 0.01", ErrInvalid, orig)
	}
	if len(frac) > 4 {
		return 0, fmt.Errorf("%w: %q has more than 4 decimals; the resolution is 0.0001%%", ErrInvalid, orig)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: %q is not a percentage; write e.g. 99.5 or 0.01", ErrInvalid, orig)
			}
		}
	}
	if len(whole) > 3 {
		return 0, fmt.Errorf("%w: %q is more than 100%%", ErrInvalid, orig)
	}
	var ppm int64
	if whole != "" {
		n, _ := strconv.ParseInt(whole, 10, 64)
		ppm = n * 10_000
	}
	if frac != "" {
		n, _ := strconv.ParseInt(frac+strings.Repeat("0", 4-len(frac)), 10, 64)
		ppm += n
	}
	if neg {
		ppm = -ppm
	}
	return ppm, nil
}

// FormatPercent renders parts per million as a percent without trailing
// zeros: 990000 -> "99", 100 -> "0.01".
func FormatPercent(ppm int64) string {
	sign := ""
	if ppm < 0 {
		sign, ppm = "-", -ppm
	}
	s := strconv.FormatInt(ppm/10_000, 10)
	if f := ppm % 10_000; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%04d", f), "0")
	}
	return sign + s
}

// ParseAssignments parses CLI arguments such as "v1=99.5" "v2=0.5".
// It checks the syntax and the sum, not whether the versions exist.
func ParseAssignments(args []string) (Weights, error) {
	w := Weights{}
	for i, a := range args {
		name, pct, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: argument %d %q: want VERSION=PERCENT, e.g. v2=1", ErrInvalid, i+1, a)
		}
		if _, dup := w[name]; dup {
			return nil, fmt.Errorf("%w: argument %d: version %s is given twice", ErrInvalid, i+1, name)
		}
		p, err := ParsePercent(pct)
		if err != nil {
			return nil, fmt.Errorf("argument %d (%s): %w", i+1, name, err)
		}
		w[name] = p
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return w, nil
}

// Apportion divides total between parts in proportion to weights (all ≥ 0,
// some > 0) by the largest-remainder method: whole shares that sum to
// exactly total, each within one of its exact share. Weights written by
// people (0–100), drain factors and Istio's whole percents all go through
// it. Ties go to the earlier part.
func Apportion(weights []int64, total int64) []int64 {
	out := make([]int64, len(weights))
	var sum int64
	for _, w := range weights {
		sum += w
	}
	if sum <= 0 {
		return out
	}
	rem := make([]int64, len(weights))
	order := make([]int, len(weights))
	var given int64
	for i, w := range weights {
		out[i], rem[i] = w*total/sum, w*total%sum
		given += out[i]
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rem[order[a]] > rem[order[b]] })
	for k := 0; given < total; k++ {
		out[order[k%len(order)]]++
		given++
	}
	return out
}
