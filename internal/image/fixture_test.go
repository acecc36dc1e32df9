package image

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// writeService writes a small Go service whose output proves the image
// holds what it needs: the message (changed by the one-line-change tests),
// the user it runs as, a time zone from the image's database and the CA
// bundle's presence.
func writeService(t *testing.T, dir, message string) {
	t.Helper()
	files := map[string]string{
		"go.mod": "module example.com/hello\n\ngo 1.26\n",
		"main.go": `package main

import (
	"fmt"
	"os"
	"time"
)

const message = "` + message + `"

func main() {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		fmt.Println("no time zones:", err)
		os.Exit(1)
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		fmt.Println("no CA certificates:", err)
		os.Exit(1)
	}
	fmt.Printf("%s uid=%d tz=%s\n", message, os.Getuid(), loc)
}
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostPlatform is the platform the tests' images run on here.
func hostPlatform() v1.Platform { return v1.Platform{OS: "linux", Architecture: runtime.GOARCH} }

// runImage unpacks the image's file system and runs its entrypoint in it
// (chroot, as the image's user): the binary finds only what the image holds.
func runImage(t *testing.T, img v1.Image) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("running an image's binary needs chroot, so root (the test machines run tests as root)")
	}
	root := t.TempDir()
	untar(t, mutate.Extract(img), root)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--userspec=" + cf.Config.User, root}, cf.Config.Entrypoint...)
	cmd := exec.CommandContext(context.Background(), "chroot", args...)
	cmd.Env = cf.Config.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the image's entrypoint %v: %v\n%s", cf.Config.Entrypoint, err, out)
	}
	return strings.TrimSpace(string(out))
}

func untar(t *testing.T, rc io.ReadCloser, dir string) {
	t.Helper()
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)|0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, os.FileMode(h.Mode)&os.ModePerm|modeBits(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		case tar.TypeSymlink:
			_ = os.Symlink(h.Linkname, p)
		}
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}
