// Command build benchmarks `pave build` against ko (github.com/google/ko),
// side by side in one run (bench/build/run.sh): the same service made by
// `pave new`, the same base image, the same local CNCF distribution
// registry behind a proxy that counts the bytes each push uploads.
//
// Per pass and tool, into a repository of its own (so the first push is
// cold: the registry has only the base):
//
//	cold      build and push the service
//	one-line  change one line of the service, build and push again
//
// The Go build cache is warm for both (a CI runner with Pave's shared
// cache); the change includes the pass number, so each pass compiles and
// links anew. Passes alternate the order of the tools. Printed: per
// measure the median of Pave and ko, and the median, min and max of the
// per-pass ratio Pave/ko; bytes uploaded per push; image size (compressed
// layers + config + manifest).
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pave-platform/pave/internal/image"
)

var (
	paveBin     = flag.String("pave", "", "the pave binary")
	koBin       = flag.String("ko", "", "the ko binary")
	registryBin = flag.String("registry", "", "the distribution registry binary")
	passes      = flag.Int("passes", 5, "interleaved passes per tool")
	work        = flag.String("work", "", "scratch directory (default: a new one under /tmp)")
)

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *paveBin == "" || *koBin == "" || *registryBin == "" {
		log.Fatal("-pave, -ko and -registry are required (bench/build/run.sh passes them)")
	}
	dir := *work
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "pave-bench-build-"); err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	regAddr, stop := startRegistry(dir)
	defer stop()
	proxy := startProxy(regAddr)
	log.Printf("registry %s behind the counting proxy %s", regAddr, proxy.addr)

	svc := filepath.Join(dir, "svc")
	run("", nil, *paveBin, "new", "benchsvc", "--dir", svc, "--registry", proxy.addr)
	baseRef := pushBase(proxy.addr, svc)
	// Both tools start from the same base in the same registry, and strip
	// symbols (-s -w: pave build's default; ko's documented ldflags).
	must(os.WriteFile(filepath.Join(svc, ".pave.yaml"), append(read(filepath.Join(svc, ".pave.yaml")),
		[]byte("image:\n  base: "+baseRef+"\n")...), 0o644))
	must(os.WriteFile(filepath.Join(svc, ".ko.yaml"), []byte("defaultBaseImage: "+baseRef+"\nbuilds:\n- id: benchsvc\n  main: .\n  ldflags: [\"-s\", \"-w\"]\n"), 0o644))
	mainGo := filepath.Join(svc, "main.go")
	original := read(mainGo)
	// Warm the build cache as a CI runner with the shared cache has it:
	// one unrecorded build and push per tool (each builds with its own
	// flags, hence its own cache entries).
	for _, tool := range []string{"pave", "ko"} {
		must(os.WriteFile(mainGo, changed(original, "warm-up"), 0o644))
		ref := build(tool, svc, fmt.Sprintf("%s/%s-warm/benchsvc", proxy.addr, tool))
		log.Printf("%s warm-up: %s (binary stripped of symbols: %v)", tool, ref, stripped(ref))
	}

	type sample struct {
		cold, change                           time.Duration
		coldBytes, changeBytes, size, binLayer int64
	}
	results := map[string][]sample{}
	tools := []string{"pave", "ko"}
	for pass := 1; pass <= *passes; pass++ {
		order := tools
		if pass%2 == 0 {
			order = []string{"ko", "pave"}
		}
		for _, tool := range order {
			repo := fmt.Sprintf("%s/%s-%d/benchsvc", proxy.addr, tool, pass)
			var s sample
			must(os.WriteFile(mainGo, changed(original, fmt.Sprintf("pass %d cold", pass)), 0o644))
			proxy.reset()
			t0 := time.Now()
			ref := build(tool, svc, repo)
			s.cold, s.coldBytes = time.Since(t0), proxy.uploaded()
			must(os.WriteFile(mainGo, changed(original, fmt.Sprintf("pass %d changed", pass)), 0o644))
			proxy.reset()
			t0 = time.Now()
			ref = build(tool, svc, repo)
			s.change, s.changeBytes = time.Since(t0), proxy.uploaded()
			s.size, s.binLayer = imageSize(ref)
			results[tool] = append(results[tool], s)
			log.Printf("pass %d %-4s cold %6.2fs %9d B   one-line %6.2fs %9d B   image %9d B (binary layer %d B)",
				pass, tool, s.cold.Seconds(), s.coldBytes, s.change.Seconds(), s.changeBytes, s.size, s.binLayer)
		}
	}
	must(os.WriteFile(mainGo, original, 0o644))

	p, k := results["pave"], results["ko"]
	row := func(label string, f func(sample) float64, unit string) {
		var pv, kv, ratios []float64
		for i := range p {
			pv, kv = append(pv, f(p[i])), append(kv, f(k[i]))
			ratios = append(ratios, f(p[i])/f(k[i]))
		}
		fmt.Printf("%-34s Pave %10.2f %s   ko %10.2f %s   ratio %.2f× (min %.2f, max %.2f)\n",
			label, median(pv), unit, median(kv), unit, median(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	fmt.Println()
	fmt.Printf("pave build vs ko v0.19.1, %d interleaved passes, same service, base and registry\n", *passes)
	row("cold build-and-push", func(s sample) float64 { return s.cold.Seconds() }, "s ")
	row("one-line change build-and-push", func(s sample) float64 { return s.change.Seconds() }, "s ")
	row("bytes uploaded, cold push", func(s sample) float64 { return float64(s.coldBytes) / 1024 }, "KiB")
	row("bytes uploaded, one-line change", func(s sample) float64 { return float64(s.changeBytes) / 1024 }, "KiB")
	row("image size (compressed)", func(s sample) float64 { return float64(s.size) / 1024 }, "KiB")
	row("binary layer (compressed)", func(s sample) float64 { return float64(s.binLayer) / 1024 }, "KiB")
	var over []float64
	for _, s := range p {
		over = append(over, float64(s.changeBytes-s.binLayer))
	}
	fmt.Printf("Pave one-line change: bytes uploaded beyond the binary layer: median %.0f B (goal ≤ 2048 B; includes the SBOM referrer)\n", median(over))
}

// build runs one tool and returns the digest reference it printed.
func build(tool, svc, repo string) string {
	var out string
	switch tool {
	case "pave":
		out = run(svc, nil, *paveBin, "build", ".", "--image", repo, "--push")
	case "ko":
		out = run(svc, []string{"KO_DOCKER_REPO=" + repo, "KO_CONFIG_PATH=" + filepath.Join(svc, ".ko.yaml")},
			*koBin, "build", ".", "--bare", "--platform=linux/amd64", "--tags=latest")
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// imageSize is the pushed image's compressed layers + config + manifest,
// and its last (binary) layer.
func imageSize(ref string) (int64, int64) {
	r, err := name.ParseReference(ref)
	must(err)
	img, err := remote.Image(r)
	must(err)
	m, err := img.Manifest()
	must(err)
	raw, _ := img.RawManifest()
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, m.Layers[len(m.Layers)-1].Size
}

// stripped reports whether the image's binary (its last layer's one
// regular file) has no symbol table: both tools should build with -s -w.
func stripped(ref string) bool {
	r, err := name.ParseReference(ref)
	must(err)
	img, err := remote.Image(r)
	must(err)
	ls, err := img.Layers()
	must(err)
	rc, err := ls[len(ls)-1].Uncompressed()
	must(err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		must(err)
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		must(err)
		f, err := elf.NewFile(bytes.NewReader(b))
		must(err)
		return f.Section(".symtab") == nil
	}
}

// pushBase pushes pave build's default base (CA certificates, time
// zones, a non-root user) as the base both tools build on.
func pushBase(registry, svc string) string {
	goroot := strings.TrimSpace(run(svc, nil, "go", "env", "GOROOT"))
	base, err := image.ScratchBase(image.Settings{}, goroot)
	must(err)
	ref := registry + "/base/static:v1"
	tag, err := name.NewTag(ref)
	must(err)
	must(remote.Write(tag, base))
	return ref
}

// changed is main.go with one line added: a string the binary keeps.
func changed(src []byte, marker string) []byte {
	return append(bytes.Clone(src), []byte("\nfunc init() {\n\tif len(os.Args) > 1000 {\n\t\tprintln(\""+marker+"\")\n\t}\n}\n")...)
}

func startRegistry(dir string) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(dir, "registry.yml")
	must(os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  relativeurls: true\n",
		filepath.Join(dir, "registry"), addr)), 0o600))
	cmd := exec.Command(*registryBin, "serve", cfg)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	must(err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(cmd.Start())
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 300 {
			log.Fatal("the registry did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

type countingProxy struct {
	addr  string
	bytes atomic.Int64
}

func (p *countingProxy) reset()          { p.bytes.Store(0) }
func (p *countingProxy) uploaded() int64 { return p.bytes.Load() }

// startProxy counts the request bodies (blob uploads and manifest PUTs)
// that reach the registry.
func startProxy(target string) *countingProxy {
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	p := &countingProxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	p.addr = ln.Addr().String()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &counter{r.Body, &p.bytes}
		rp.ServeHTTP(w, r)
	}))
	return p
}

type counter struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}

func run(dir string, env []string, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func read(p string) []byte {
	b, err := os.ReadFile(p)
	must(err)
	return b
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
