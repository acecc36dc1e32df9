// Command fleet measures `pave upgrade --all`: the time to upgrade N
// generated services (default 100: mixed template versions, hand edits,
// some conflicting, some with a failing test) with --jobs J (default 8),
// and the share that upgraded cleanly. The peer is the bulk-change script
// platform teams wrote before (xargs -P J over the repositories running,
// per repository, git checkout -b, pave upgrade, go mod tidy, go build,
// go test, git commit), on a copy of the same services in the same run.
//
//	go run ./bench/fleet -n 100 -jobs 8
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/bulkupgrade"
	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/inventory/inventorytest"
)

type fatal struct{}

func (fatal) Helper() {}
func (fatal) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fleet bench: "+format+"\n", args...)
	os.Exit(1)
}

// generate makes n services under dir, per 10: 6 plain or hand-edited at
// template v1/v2 (clean), 2 with a hand-edited Dockerfile (the v1 one
// conflicts), 1 with a failing test, 1 already current.
func generate(dir string, n int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("svc-%03d", i)
			version := 1 + i%2
			switch i % 10 {
			case 9:
				version = 0
			}
			d := inventorytest.NewService(fatal{}, dir, inventorytest.Service{Name: name, Version: version, GoSum: true})
			switch i % 10 {
			case 1, 3:
				inventorytest.Edit(fatal{}, d, "api.go", "", "\n// team note\n")
			case 6, 7:
				if version == 2 {
					inventorytest.Edit(fatal{}, d, "README.md", "", "\nTeam notes.\n")
				}
				inventorytest.Edit(fatal{}, d, "Dockerfile", " AS build", "-alpine AS build")
			case 8:
				inventorytest.Edit(fatal{}, d, "api_test.go", "", "\nfunc TestBroken(t *testing.T) { t.Fatal(\"broken\") }\n")
			}
		}()
	}
	wg.Wait()
}

// peerScript is one repository's turn in the script: the same steps as
// Pave's, in the same shared build and module caches, each timed into
// $STEPS (step seconds per line).
const peerScript = `set -e
cd "$1"
t=$EPOCHREALTIME
step() { now=$EPOCHREALTIME; echo "$1 $(echo "$now - $t" | bc)" >> "$STEPS"; t=$now; }
git checkout -q -b bulk-upgrade
step checkout
out=$("$PAVE" upgrade 2>&1) || { step upgrade; echo "$1 conflicts"; git add -A; git commit -qm "bulk upgrade (conflicts)"; step commit; exit 0; }
step upgrade
r=clean
go mod tidy >/dev/null 2>&1 || r=tests-failed
step tidy
[ $r = clean ] && { go build ./... >/dev/null 2>&1 || r=tests-failed; }
step build
[ $r = clean ] && { go test ./... >/dev/null 2>&1 || r=tests-failed; }
step test
git add -A
git commit -qm "bulk upgrade" >/dev/null 2>&1 || r=up-to-date
step commit
echo "$1 $r"
`

func breakdown(s bulkupgrade.Steps) string {
	var parts []string
	for _, k := range bulkupgrade.StepOrder {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, s[k]))
	}
	return strings.Join(parts, ", ")
}

// peerSteps sums the script's step log.
func peerSteps(file string) bulkupgrade.Steps {
	s := bulkupgrade.Steps{}
	data, _ := os.ReadFile(file)
	for _, l := range strings.Split(string(data), "\n") {
		var k string
		var v float64
		if n, _ := fmt.Sscanf(l, "%s %f", &k, &v); n == 2 {
			s[k] += v
		}
	}
	return s
}

func main() {
	n := flag.Int("n", 100, "services")
	jobs := flag.Int("jobs", 8, "services at once")
	runPeer := flag.Bool("peer", true, "also time the script (false: profile Pave alone)")
	flag.Parse()
	work, err := os.MkdirTemp("", "pave-bench-fleet-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(work)
	// Both sides share the user's build and module caches (GOCACHE,
	// GOMODCACHE) and see the same environment.
	os.Setenv("GOWORK", "off")
	for _, kv := range inventorytest.GitIdentity() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	fmt.Fprintf(os.Stderr, "generating %d services…\n", *n)
	t0 := time.Now()
	generate(filepath.Join(work, "a"), *n)
	if out, err := exec.Command("cp", "-a", filepath.Join(work, "a"), filepath.Join(work, "b")).CombinedOutput(); err != nil {
		panic(string(out))
	}
	fmt.Fprintf(os.Stderr, "generated in %.0fs\n", time.Since(t0).Seconds())
	pave := filepath.Join(work, "pave")
	build := exec.Command("go", "build", "-o", pave, "./cmd/pave")
	build.Dir, build.Env = inventorytest.RepoRoot(), append(os.Environ(), "GOWORK=", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		panic(string(out))
	}

	// Warm the shared build cache with kit and its dependencies, which
	// every service imports, so neither side pays them for the other.
	warm := exec.Command("go", "build", "-o", os.DevNull, ".")
	warm.Dir = filepath.Join(work, "warm")
	if out, err := exec.Command("cp", "-a", filepath.Join(work, "a", "svc-000"), warm.Dir).CombinedOutput(); err != nil {
		panic(string(out))
	}
	if out, err := warm.CombinedOutput(); err != nil {
		panic(string(out))
	}
	load := func() string {
		b, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Fprintf(os.Stderr, "load before pave: %s\n", load())

	var f inventory.File
	for i := range *n {
		f.Services = append(f.Services, inventory.Entry{Path: fmt.Sprintf("svc-%03d", i)})
	}
	start := time.Now()
	rep, err := bulkupgrade.Run(context.Background(), f, bulkupgrade.Options{
		Sources: &inventory.Sources{Base: filepath.Join(work, "a"), CacheDir: filepath.Join(work, "cache")},
		Jobs:    *jobs, PRDir: filepath.Join(work, "prs"),
	})
	if err != nil {
		panic(err)
	}
	paveSecs := time.Since(start).Seconds()
	paveLoad := load()
	fmt.Printf("machine: %d services, --jobs %d, %d CPUs; load average after pave %s\n", *n, *jobs, runtime.NumCPU(), paveLoad)
	fmt.Printf("outcomes (pave): %v\n", rep.Summary)
	fmt.Printf("pave upgrade --all:   %.0f s, %d/%d clean (%.0f%%)\n", paveSecs, rep.Summary[bulkupgrade.Clean], *n, 100*float64(rep.Summary[bulkupgrade.Clean])/float64(*n))
	fmt.Printf("  step seconds summed over services: %s\n", breakdown(rep.Steps))
	if !*runPeer {
		return
	}

	stepsFile := filepath.Join(work, "peer-steps")
	start = time.Now()
	peer := exec.Command("bash", "-c", `ls -d "$ROOT"/svc-* | xargs -P "$JOBS" -n 1 bash -c "$SCRIPT" peer`)
	peer.Env = append(os.Environ(), "ROOT="+filepath.Join(work, "b"), fmt.Sprintf("JOBS=%d", *jobs), "SCRIPT="+peerScript, "PAVE="+pave, "STEPS="+stepsFile)
	out, err := peer.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "peer script: %v\n%s", err, out)
	}
	peerSecs := time.Since(start).Seconds()
	peerClean := strings.Count(string(out), " clean\n")

	fmt.Printf("peer (xargs script):  %.0f s, %d/%d clean (%.0f%%); load average after it %s\n", peerSecs, peerClean, *n, 100*float64(peerClean)/float64(*n), load())
	fmt.Printf("  step seconds summed over services: %s\n", breakdown(peerSteps(stepsFile)))
	fmt.Printf("time ratio pave/peer: %.2f\n", paveSecs/peerSecs)
}
