package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The same source gives the same digest when built in two directories
// (paths, temporary names and times must not leak into any layer).
func TestBuildIsReproducibleAcrossDirectories(t *testing.T) {
	var digests []string
	for range 2 {
		dir := filepath.Join(t.TempDir(), "somewhere", "else")
		writeService(t, dir, "hello v1")
		if err := os.MkdirAll(filepath.Join(dir, "kodata"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kodata", "index.html"), []byte("<h1>hi</h1>"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Build(context.Background(), Options{Dir: dir, Image: "registry.example/acme/hello", Revision: "abc123",
			Platforms: []v1.Platform{hostPlatform()}})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Digest)
		if !strings.HasPrefix(res.Reference, "registry.example/acme/hello@sha256:") {
			t.Fatalf("reference %q: want registry.example/acme/hello@sha256:...", res.Reference)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same source in different directories: digests %s and %s", digests[0], digests[1])
	}
}

// --tarball writes an image docker load reads; it runs.
func TestBuildTarballRuns(t *testing.T) {
	dir := t.TempDir()
	writeService(t, dir, "from a tarball")
	out := filepath.Join(t.TempDir(), "hello.tar")
	res, err := Build(context.Background(), Options{Dir: dir, Image: "registry.example/hello", Tarball: out,
		Platforms: []v1.Platform{hostPlatform()}})
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	// docker load's format keeps config and layers, not the manifest.
	cd, _ := img.ConfigName()
	if want := res.Images[0].Config; cd.String() != want {
		t.Fatalf("tarball image's config %s, result says %s", cd, want)
	}
	cf, _ := img.ConfigFile()
	if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/usr/local/bin/hello" || !cf.Created.Time.Equal(epoch) {
		t.Fatalf("config: user %q entrypoint %v created %v", cf.Config.User, cf.Config.Entrypoint, cf.Created)
	}
	if got := runImage(t, img); got != "from a tarball uid=65532 tz=Europe/Paris" {
		t.Fatalf("the image's binary printed %q", got)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	lib := t.TempDir()
	writeService(t, lib, "x")
	if err := os.WriteFile(filepath.Join(lib, "main.go"), []byte("package hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "go.mod"), []byte("module example.com/empty\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	writeService(t, good, "x")
	for _, c := range []struct {
		name string
		o    Options
		want []string
	}{
		{"library package", Options{Dir: lib, Image: "r.example/x"}, []string{lib, "package hello, not a main package"}},
		{"no Go files", Options{Dir: empty, Image: "r.example/x"}, []string{empty, "holds no Go package"}},
		{"missing directory", Options{Dir: "/nonexistent/svc", Image: "r.example/x"}, []string{"/nonexistent/svc"}},
		// --image is checked before the (nonexistent) directory is looked at.
		{"image without registry", Options{Dir: "/nonexistent", Image: "hello"}, []string{`--image "hello" names no registry`}},
		{"image with tag", Options{Dir: "/nonexistent", Image: "r.example/x:v1"}, []string{"has a tag", "--tag"}},
		{"image with digest", Options{Dir: "/nonexistent", Image: "r.example/x@sha256:abc"}, []string{"has a digest"}},
		{"image unparsable", Options{Dir: "/nonexistent", Image: "r.example/UPPER case"}, []string{`--image "r.example/UPPER case"`}},
		{"bad tag", Options{Dir: "/nonexistent", Image: "r.example/x", Tags: []string{"-bad"}}, []string{`--tag "-bad"`}},
		{"push and tarball", Options{Dir: good, Image: "r.example/x", Push: true, Tarball: "x.tar"}, []string{"exclusive"}},
		{"registry missing", Options{Dir: good, Image: "127.0.0.1:1/x", Push: true}, []string{"registry 127.0.0.1:1 is unreachable"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(context.Background(), c.o)
			if err == nil {
				t.Fatal("built; want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := ParsePlatforms("linux/amd64, linux/arm64,linux/arm/v7")
	if err != nil || len(ps) != 3 || ps[2].Variant != "v7" {
		t.Fatalf("got %v, %v", ps, err)
	}
	for _, bad := range []string{"", "windows/amd64", "amd64", "linux/amd64,linux/amd64", "linux/amd64/v3"} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("ParsePlatforms(%q) accepted it", bad)
		}
	}
}

// go build runs in the caller's environment: a GOCACHEPROG (Pave's shared
// build cache client) is used, here seen failing as the program is absent.
func TestBuildHonoursGOCACHEPROG(t *testing.T) {
	dir := t.TempDir()
	writeService(t, dir, "cached")
	t.Setenv("GOCACHEPROG", filepath.Join(t.TempDir(), "no-such-cache-program"))
	_, err := Build(context.Background(), Options{Dir: dir, Image: "r.example/x", Platforms: []v1.Platform{hostPlatform()}})
	if err == nil || !strings.Contains(err.Error(), "no-such-cache-program") {
		t.Fatalf("got %v; want go failing on the GOCACHEPROG given", err)
	}
}
