package image

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// systemCABundles are where Linux distributions keep the PEM bundle of
// trusted roots (Debian/Ubuntu/Alpine, Fedora/RHEL, others).
var systemCABundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/cert.pem",
}

// ScratchBase is the default base: one layer, the same for every
// platform, with what a static Go binary needs from a system: trusted CA
// certificates (for outgoing TLS), the time zone database (time.LoadLocation)
// and passwd/group entries for the non-root user.
func ScratchBase(s Settings, goroot string) (v1.Image, error) {
	s = s.withDefaults()
	caPath := s.CACertificates
	if caPath == "" {
		for _, p := range systemCABundles {
			if _, err := os.Stat(p); err == nil {
				caPath = p
				break
			}
		}
		if caPath == "" {
			return nil, fmt.Errorf("scratch base: no CA certificate bundle on this machine (looked in %s): install ca-certificates or set image.caCertificates in .pave.yaml", strings.Join(systemCABundles, ", "))
		}
	}
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("scratch base: CA certificates (image.caCertificates in .pave.yaml): %w", err)
	}
	zones, err := zoneinfo(filepath.Join(goroot, "lib", "time", "zoneinfo.zip"))
	if err != nil {
		return nil, fmt.Errorf("scratch base: time zone database of the Go toolchain: %w", err)
	}
	uid, gid, _ := strings.Cut(s.User, ":")
	if gid == "" {
		gid = uid
	}
	entries := append(zones,
		entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		entry{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:" + uid + ":" + gid + ":nonroot:/home/nonroot:/sbin/nologin\n")},
		entry{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:" + gid + ":\n")},
		entry{name: "home/nonroot", mode: 0o700, dir: true},
		entry{name: "tmp", mode: 0o1777, dir: true},
	)
	layer, err := newLayer(entries)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "pave build: scratch base"},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(img, types.OCIConfigJSON), nil
}

// zoneinfo unpacks Go's time zone zip into usr/share/zoneinfo, where Go,
// glibc and musl programs all look.
func zoneinfo(zipPath string) ([]entry, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	var out []entry
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, entry{name: "usr/share/zoneinfo/" + f.Name, mode: 0o644, data: data})
	}
	return out, nil
}

// remoteBase fetches a base image reference's image for each platform.
// Its layers stay remote: pushed to the same registry they are mounted
// from the base's repository, not uploaded.
func remoteBase(ctx context.Context, ref string, platforms []v1.Platform, opts []remote.Option) (map[string]v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image.base %q in .pave.yaml: %v (want scratch or an image reference)", ref, err)
	}
	desc, err := remote.Get(r, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("base image %s (image.base in .pave.yaml): %w", ref, describeRegistryError(r.Context().RegistryStr(), err))
	}
	out := map[string]v1.Image{}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, p := range platforms {
			for _, d := range m.Manifests {
				if d.Platform != nil && d.Platform.Satisfies(p) {
					img, err := idx.Image(d.Digest)
					if err != nil {
						return nil, err
					}
					out[p.String()] = img
					break
				}
			}
			if out[p.String()] == nil {
				return nil, fmt.Errorf("base image %s has no %s image; build for the platforms it has, or pick a multi-platform base", ref, p.String())
			}
		}
		return out, nil
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	for _, p := range platforms {
		if cf.Platform() != nil && !cf.Platform().Satisfies(p) {
			return nil, fmt.Errorf("base image %s is %s only, not %s", ref, cf.Platform().String(), p.String())
		}
		out[p.String()] = img
	}
	return out, nil
}

// assets are the kodata/ directory's files (ko's convention), placed at
// /var/run/ko with KO_DATA_PATH pointing there.
func assets(dir string) ([]entry, error) {
	root := filepath.Join(dir, "kodata")
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		name := assetsDir + "/" + filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			out = append(out, entry{name: name, mode: 0o755, dir: true})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, linkname: target})
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, mode: 0o644, data: data})
		default:
			return fmt.Errorf("kodata: %s is neither a file, a directory nor a symbolic link", p)
		}
		return nil
	})
	return out, err
}

const assetsDir = "var/run/ko"
