// Package image builds a Go service into a layered, reproducible OCI image
// without a container runtime, and pushes what the registry lacks: `pave
// build`. The layers go from what rarely changes to what changes with
// every commit (base, assets, binary), so a one-line change uploads one
// small layer, a config and a manifest.
package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Options are one build's inputs.
type Options struct {
	Dir       string        // the service's main package
	Image     string        // REGISTRY/NAME
	Tags      []string      // default "latest"
	Platforms []v1.Platform // default linux/amd64
	Push      bool
	Tarball   string // a docker-loadable tarball (one platform)
	// Source and Revision label the image (org.opencontainers.image.*);
	// empty: read from git in Dir (origin's URL, HEAD).
	Source, Revision string
	GoCommand        string         // default "go"
	Keychain         authn.Keychain // default authn.DefaultKeychain (Docker config, credential helpers)
	// Remote are extra registry options (tests: a transport).
	Remote []remote.Option
	Log    io.Writer // progress; nil discards
}

// Result is what `pave build` prints.
type Result struct {
	// Reference is REGISTRY/NAME@sha256:..., what `pave release --image` takes.
	Reference string     `json:"reference"`
	Digest    string     `json:"digest"`
	MediaType string     `json:"mediaType"`
	Tags      []string   `json:"tags"`
	Pushed    bool       `json:"pushed"`
	Tarball   string     `json:"tarball,omitempty"`
	Base      string     `json:"base"`
	Images    []Platform `json:"images"`
}

// Platform is one platform's image of the result.
type Platform struct {
	Platform    string `json:"platform"`
	Digest      string `json:"digest"`
	Config      string `json:"config"`
	BinaryLayer string `json:"binaryLayer"`
	BinarySize  int64  `json:"binaryLayerSize"` // compressed
	Size        int64  `json:"size"`            // compressed layers + config + manifest
	SBOM        string `json:"sbom,omitempty"`  // the SBOM referrer's digest, once pushed
}

// binaryDir is where the binary lives in the image.
const binaryDir = "usr/local/bin"

// Build compiles, assembles and (with Push or Tarball) publishes the image.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.GoCommand == "" {
		o.GoCommand = "go"
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	// Everything the user typed is checked before anything is compiled.
	repo, err := ParseRepository(o.Image)
	if err != nil {
		return nil, err
	}
	if len(o.Tags) == 0 {
		o.Tags = []string{"latest"}
	}
	for _, t := range o.Tags {
		if err := ValidateTag(repo, t); err != nil {
			return nil, err
		}
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}}
	}
	if o.Push && o.Tarball != "" {
		return nil, fmt.Errorf("--push and --tarball are exclusive: push to the registry, or write a tarball")
	}
	if o.Tarball != "" && len(o.Platforms) > 1 {
		return nil, fmt.Errorf("--tarball holds one platform's image (docker load reads no index): give one --platform, or --push")
	}
	env := goEnv(ctx, o.GoCommand, o.Dir)
	pkg, err := findMainPackage(ctx, o.GoCommand, o.Dir, env)
	if err != nil {
		return nil, err
	}
	settings, settingsPath, err := readSettings(pkg.Dir, pkg.ModuleRoot)
	if err != nil {
		return nil, err
	}
	remoteOpts := append([]remote.Option{remote.WithAuthFromKeychain(o.Keychain), remote.WithContext(ctx)}, o.Remote...)

	assetEntries, err := assets(pkg.Dir)
	if err != nil {
		return nil, err
	}
	// The binaries compile while the base is prepared.
	tmp, err := os.MkdirTemp("", "pave-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	binaries := make([]string, len(o.Platforms))
	var bases map[string]v1.Image
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range o.Platforms {
		binaries[i] = filepath.Join(tmp, strings.ReplaceAll(p.String(), "/", "-"), pkg.Name)
		g.Go(func() error {
			logf("compiling %s for %s", pkg.ImportPath, p.String())
			return compile(gctx, o.GoCommand, pkg, p, binaries[i], env)
		})
	}
	g.Go(func() error {
		var err error
		bases, err = prepareBase(gctx, settings, settingsPath, o, pkg, env, remoteOpts)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var assetsLayer v1.Layer
	if len(assetEntries) > 0 {
		if assetsLayer, err = newLayer(assetEntries); err != nil {
			return nil, err
		}
	}

	labels := map[string]string{"org.opencontainers.image.title": pkg.Name}
	source, revision := o.Source, o.Revision
	if source == "" {
		source = git(ctx, pkg.Dir, "remote", "get-url", "origin")
	}
	if revision == "" {
		revision = git(ctx, pkg.Dir, "rev-parse", "HEAD")
	}
	if source != "" {
		labels["org.opencontainers.image.source"] = source
	}
	if revision != "" {
		labels["org.opencontainers.image.revision"] = revision
	}

	res := &Result{Tags: o.Tags, Base: settings.Base}
	images := make([]v1.Image, len(o.Platforms))
	sboms := make([][]byte, len(o.Platforms))
	for i, p := range o.Platforms {
		img, binLayer, sbom, err := assemble(bases[p.String()], assetsLayer, binaries[i], pkg.Name, p, settings, labels)
		if err != nil {
			return nil, fmt.Errorf("assemble the %s image: %w", p.String(), err)
		}
		images[i], sboms[i] = img, sbom
		d, _ := img.Digest()
		ld, _ := binLayer.Digest()
		cd, _ := img.ConfigName()
		bsize, _ := binLayer.Size()
		res.Images = append(res.Images, Platform{Platform: p.String(), Digest: d.String(), Config: cd.String(),
			BinaryLayer: ld.String(), BinarySize: bsize, Size: imageSize(img)})
	}
	var a artefact
	if len(images) == 1 {
		a.image = images[0]
	} else {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		for i, img := range images {
			p := o.Platforms[i]
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		}
		a.index = idx
	}
	desc, err := a.descriptor()
	if err != nil {
		return nil, err
	}
	res.Digest, res.MediaType = desc.Digest.String(), string(desc.MediaType)
	res.Reference = repo.Digest(res.Digest).String()

	switch {
	case o.Push:
		logf("pushing %s", repo)
		if err := publish(ctx, repo, o.Tags, a, remoteOpts); err != nil {
			return nil, err
		}
		// Each platform image gets the SBOM of its own binary; pushed
		// after the image, whose manifest is its subject.
		for i, img := range images {
			d, err := partial.Descriptor(img)
			if err != nil {
				return nil, err
			}
			sd, err := attachSBOM(ctx, repo, sboms[i], *d, remoteOpts)
			if err != nil {
				return nil, err
			}
			res.Images[i].SBOM = sd.String()
		}
		res.Pushed = true
	case o.Tarball != "":
		refs := map[name.Reference]v1.Image{}
		for _, t := range o.Tags {
			refs[repo.Tag(t)] = a.image
		}
		if err := tarball.MultiRefWriteToFile(o.Tarball, refs); err != nil {
			return nil, fmt.Errorf("write --tarball %s: %w", o.Tarball, err)
		}
		res.Tarball = o.Tarball
	}
	return res, nil
}

// prepareBase returns the base image of each platform.
func prepareBase(ctx context.Context, s Settings, settingsPath string, o Options, pkg mainPackage, env []string, opts []remote.Option) (map[string]v1.Image, error) {
	if s.Base != baseScratch {
		return remoteBase(ctx, s.Base, o.Platforms, opts)
	}
	root, err := goRoot(ctx, o.GoCommand, pkg.Dir, env)
	if err != nil {
		return nil, err
	}
	img, err := ScratchBase(s, root)
	if err != nil {
		if settingsPath != "" {
			return nil, fmt.Errorf("%w (settings: %s)", err, settingsPath)
		}
		return nil, err
	}
	out := map[string]v1.Image{}
	for _, p := range o.Platforms {
		out[p.String()] = img
	}
	return out, nil
}

func imageSize(img v1.Image) int64 {
	var n int64
	if m, err := img.RawManifest(); err == nil {
		n += int64(len(m))
	}
	if c, err := img.RawConfigFile(); err == nil {
		n += int64(len(c))
	}
	if ls, err := img.Layers(); err == nil {
		for _, l := range ls {
			if s, err := l.Size(); err == nil {
				n += s
			}
		}
	}
	return n
}

// git answers a question about the repository around dir, or "" when
// there is none (a tarball checkout, no git installed).
func git(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
