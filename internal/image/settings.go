package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Settings are the `image:` section of a service's .pave.yaml:
//
//	image:
//	  base: scratch            # or an image reference, e.g. gcr.io/distroless/static-debian12:nonroot
//	  user: "65532:65532"
//	  caCertificates: certs/ca.pem   # scratch base only; default: this machine's bundle
type Settings struct {
	// Base is "scratch" (CA certificates, time zones and a non-root user
	// assembled by pave build) or an image reference whose platform
	// images are the bottom layers.
	Base string `json:"base,omitempty"`
	// User runs the entrypoint; numeric so Kubernetes' runAsNonRoot can
	// check it without an /etc/passwd lookup.
	User string `json:"user,omitempty"`
	// CACertificates is a PEM bundle (relative to the service's root) for
	// the scratch base, to pin it: the default, this machine's system
	// bundle, changes the base layer's digest when the OS updates it.
	CACertificates string `json:"caCertificates,omitempty"`
}

const (
	baseScratch = "scratch"
	defaultUser = "65532:65532"
)

// readSettings reads the image section of the .pave.yaml in dir or, when
// there is none, in the module root above it (a service whose main package
// is in cmd/NAME). Other sections are other parts' business: this reads
// leniently.
func readSettings(dir, moduleRoot string) (Settings, string, error) {
	for _, d := range []string{dir, moduleRoot} {
		if d == "" {
			continue
		}
		path := filepath.Join(d, ".pave.yaml")
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Settings{}, "", err
		}
		var f struct {
			Image Settings `json:"image"`
		}
		if err := yaml.Unmarshal(data, &f); err != nil {
			return Settings{}, "", fmt.Errorf("%s: %w", path, err)
		}
		s := f.Image.withDefaults()
		if s.CACertificates != "" && !filepath.IsAbs(s.CACertificates) {
			s.CACertificates = filepath.Join(d, s.CACertificates)
		}
		return s, path, nil
	}
	return Settings{}.withDefaults(), "", nil
}

func (s Settings) withDefaults() Settings {
	if s.Base == "" {
		s.Base = baseScratch
	}
	if s.User == "" {
		s.User = defaultUser
	}
	return s
}
