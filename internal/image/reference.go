package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ParseRepository reads --image: a repository with its registry named
// (ghcr.io/acme/orders, 127.0.0.1:5000/orders). A tag or digest in it is
// refused, since --tag names tags and the digest is the build's result;
// Docker Hub's implicit registry is refused so an image never lands
// somewhere the user did not name.
func ParseRepository(s string) (name.Repository, error) {
	hint := "want REGISTRY/NAME, e.g. ghcr.io/acme/orders or 127.0.0.1:5000/orders"
	if strings.TrimSpace(s) == "" {
		return name.Repository{}, fmt.Errorf("--image is empty: %s", hint)
	}
	if strings.Contains(s, "@") {
		return name.Repository{}, fmt.Errorf("--image %q has a digest: %s (the digest is what pave build prints)", s, hint)
	}
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		return name.Repository{}, fmt.Errorf("--image %q has a tag: %s, and give tags with --tag", s, hint)
	}
	first, _, found := strings.Cut(s, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return name.Repository{}, fmt.Errorf("--image %q names no registry: %s", s, hint)
	}
	repo, err := name.NewRepository(s, name.StrictValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("--image %q: %v: %s", s, err, hint)
	}
	return repo, nil
}

// ParsePlatforms reads --platform: comma-separated OS/ARCH[/VARIANT], Linux
// only (the binary is static and the base is Linux's).
func ParsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := v1.ParsePlatform(part)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %v", part, err)
		}
		if p.OS != "linux" || p.Architecture == "" || strings.Count(part, "/") < 1 {
			return nil, fmt.Errorf("--platform %q: want linux/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64", part)
		}
		if p.Variant != "" && p.Architecture != "arm" {
			return nil, fmt.Errorf("--platform %q: a variant is known only for linux/arm (v6, v7)", part)
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("--platform %q is given twice", part)
		}
		seen[p.String()] = true
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--platform is empty: want e.g. linux/amd64,linux/arm64")
	}
	return out, nil
}

// ValidateTag checks a --tag before anything is built.
func ValidateTag(repo name.Repository, tag string) error {
	if strings.HasPrefix(tag, ".") || strings.HasPrefix(tag, "-") {
		return fmt.Errorf("--tag %q: a tag may not start with . or -", tag)
	}
	if _, err := name.NewTag(repo.String()+":"+tag, name.StrictValidation); err != nil {
		return fmt.Errorf("--tag %q: %v (tags are up to 128 of [A-Za-z0-9_.-], not starting with . or -)", tag, err)
	}
	return nil
}
