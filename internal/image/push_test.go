package image

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/pave-platform/pave/internal/image/imagetest"
)

// fastRetry keeps the fault tests short: ggcr's default backoff waits
// seconds between attempts.
var fastRetry = remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 2})

// The image goes to a real registry, comes back through ggcr, and its
// binary runs on the image's own file system as the image's user.
func TestPushPullAndRun(t *testing.T) {
	reg := imagetest.StartRegistry(t, "", "")
	dir := t.TempDir()
	writeService(t, dir, "hello from the registry")
	res, err := Build(context.Background(), Options{Dir: dir, Image: reg.Addr + "/acme/hello", Tags: []string{"v1", "latest"},
		Push: true, Revision: "0123abcd", Source: "https://git.example/acme/hello", Platforms: []v1.Platform{hostPlatform()}})
	if err != nil {
		t.Fatalf("%v\nregistry log:\n%s", err, reg.Logs())
	}
	if !res.Pushed || res.Reference != reg.Addr+"/acme/hello@"+res.Digest {
		t.Fatalf("result %+v", res)
	}
	ref, err := name.NewDigest(res.Reference)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "latest"} {
		d, err := remote.Head(ref.Context().Tag(tag))
		if err != nil || d.Digest.String() != res.Digest {
			t.Fatalf("tag %s: %v, %v; want %s", tag, d, err, res.Digest)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Labels["org.opencontainers.image.revision"] != "0123abcd" || cf.Config.Labels["org.opencontainers.image.source"] != "https://git.example/acme/hello" {
		t.Fatalf("labels %v", cf.Config.Labels)
	}
	layers, _ := img.Layers()
	last, _ := layers[len(layers)-1].Digest()
	if len(layers) != 2 || last.String() != res.Images[0].BinaryLayer {
		t.Fatalf("layers: %d, last %s; want base + binary %s", len(layers), last, res.Images[0].BinaryLayer)
	}
	if got := runImage(t, img); got != "hello from the registry uid=65532 tz=Europe/Paris" {
		t.Fatalf("the pulled image's binary printed %q", got)
	}
}

// After a one-line change only the binary layer, the config and the
// manifest travel; the base is found in place (HEAD), not uploaded.
func TestOneLineChangePushesOnlyTheBinaryLayer(t *testing.T) {
	reg := imagetest.StartRegistry(t, "", "")
	proxy := imagetest.StartProxy(t, reg.Addr)
	dir := t.TempDir()
	writeService(t, dir, "version one")
	o := Options{Dir: dir, Image: proxy.Addr + "/acme/hello", Push: true, Platforms: []v1.Platform{hostPlatform()}}
	first, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Take()
	writeService(t, dir, "version two")
	second, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Digest == second.Digest || first.Images[0].BinaryLayer == second.Images[0].BinaryLayer {
		t.Fatal("the change did not change the image")
	}
	reqs := proxy.Take()
	var blobPuts []string
	for _, r := range reqs {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/") {
			blobPuts = append(blobPuts, r.Query)
		}
	}
	// The image's binary layer and config; nothing of the base.
	wantBlobs := []string{second.Images[0].BinaryLayer, second.Images[0].Config}
	for _, w := range wantBlobs {
		found := false
		for _, q := range blobPuts {
			found = found || strings.Contains(q, strings.TrimPrefix(w, "sha256:"))
		}
		if !found {
			t.Errorf("blob %s was not uploaded (uploads: %v)", w, blobPuts)
		}
	}
	if len(blobPuts) != 2 {
		t.Errorf("%d blobs uploaded, want 2 (binary layer, config; the SBOM document and the base are in place): %v", len(blobPuts), blobPuts)
	}
	imageBytes := int64(0)
	for _, r := range reqs {
		if r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodPost {
			imageBytes += r.BodyBytes
		}
	}
	// The SBOM document lists modules, unchanged: only its small
	// manifest (and the referrers tag index) travels again.
	if limit := second.Images[0].BinarySize + 2048; imageBytes > limit {
		t.Errorf("uploaded %d bytes after a one-line change; want ≤ binary layer %d + 2 KiB, the SBOM referrer included", imageBytes, second.Images[0].BinarySize)
	}
	t.Logf("one-line change: %d bytes uploaded (binary layer %d bytes compressed)", imageBytes, second.Images[0].BinarySize)
	for _, r := range reqs {
		if r.BodyBytes > 0 {
			t.Logf("  %s %s %d B", r.Method, r.Path, r.BodyBytes)
		}
	}
}

// Credentials come from the Docker config; wrong ones are refused with
// what to do about them.
func TestPushWithBasicAuth(t *testing.T) {
	reg := imagetest.StartRegistry(t, "ci", "s3cret")
	dir := t.TempDir()
	writeService(t, dir, "authenticated")
	o := Options{Dir: dir, Image: reg.Addr + "/acme/hello", Push: true, Platforms: []v1.Platform{hostPlatform()}}

	t.Setenv("DOCKER_CONFIG", imagetest.DockerConfig(t, reg.Addr, "ci", "wrong"))
	_, err := Build(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "registry "+reg.Addr+" refused the credentials") || !strings.Contains(err.Error(), "docker login") {
		t.Fatalf("wrong password: got %v", err)
	}

	t.Setenv("DOCKER_CONFIG", imagetest.DockerConfig(t, reg.Addr, "ci", "s3cret"))
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.NewDigest(res.Reference)
	if _, err := remote.Image(ref); err == nil {
		t.Fatal("pulled without credentials from a registry that requires them")
	}
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		t.Fatal(err)
	}
	if got := runImage(t, img); !strings.HasPrefix(got, "authenticated ") {
		t.Fatalf("binary printed %q", got)
	}
}

// A push cut off mid-upload publishes no tag; the next push resumes,
// uploading what is missing only.
func TestPushCutMidwayPublishesNoTagAndResumes(t *testing.T) {
	reg := imagetest.StartRegistry(t, "", "")
	proxy := imagetest.StartProxy(t, reg.Addr)
	dir := t.TempDir()
	writeService(t, dir, "one")
	o := Options{Dir: dir, Image: proxy.Addr + "/acme/hello", Tags: []string{"v1"}, Push: true,
		Platforms: []v1.Platform{hostPlatform()}, Remote: []remote.Option{fastRetry}}
	if _, err := Build(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	writeService(t, dir, "two")
	o.Tags = []string{"v2"}
	proxy.Take()
	proxy.SetCut(true, 64<<10)
	_, err := Build(context.Background(), o)
	if err == nil {
		t.Fatal("push through a connection cut mid-upload succeeded")
	}
	if !strings.Contains(err.Error(), "registry "+proxy.Addr) || !strings.Contains(err.Error(), "run pave build again") {
		t.Errorf("error %q does not name the registry and what to do", err)
	}
	for _, r := range proxy.Take() {
		if strings.Contains(r.Path, "/manifests/") && r.Method == http.MethodPut {
			t.Errorf("a manifest was PUT during the failed push: %+v", r)
		}
	}
	repo, _ := name.NewRepository(proxy.Addr + "/acme/hello")
	if _, err := remote.Head(repo.Tag("v2")); !isNotFound(err) {
		t.Fatalf("tag v2 after the failed push: %v; want 404", err)
	}
	proxy.SetCut(false, 0)
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(repo.Tag("v2"))
	if err != nil || d.Digest.String() != res.Digest {
		t.Fatalf("tag v2 after the retried push: %v, %v", d, err)
	}
	img, err := remote.Image(repo.Digest(res.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if got := runImage(t, img); !strings.HasPrefix(got, "two ") {
		t.Fatalf("binary printed %q", got)
	}
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// A base named in .pave.yaml is used per platform; in the same registry
// its layers are mounted across repositories, not uploaded.
func TestRemoteBaseIsMountedNotUploaded(t *testing.T) {
	reg := imagetest.StartRegistry(t, "", "")
	proxy := imagetest.StartProxy(t, reg.Addr)
	root, err := goRoot(context.Background(), "go", ".", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	base, err := ScratchBase(Settings{User: "1000:1000"}, root)
	if err != nil {
		t.Fatal(err)
	}
	baseRef, _ := name.NewTag(proxy.Addr + "/library/base:v1")
	if err := remote.Write(baseRef, base); err != nil {
		t.Fatal(err)
	}
	baseLayers, _ := base.Layers()
	baseLayer, _ := baseLayers[0].Digest()
	dir := t.TempDir()
	writeService(t, dir, "on a named base")
	if err := os.WriteFile(filepath.Join(dir, ".pave.yaml"), []byte("image:\n  base: "+baseRef.String()+"\n  user: \"1000:1000\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proxy.Take()
	res, err := Build(context.Background(), Options{Dir: dir, Image: proxy.Addr + "/acme/hello", Push: true, Platforms: []v1.Platform{hostPlatform()}})
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	reqs := proxy.Take()
	for _, r := range reqs {
		q, _ := url.ParseQuery(r.Query)
		if r.Method == http.MethodPost && q.Get("mount") == baseLayer.String() && q.Get("from") == "library/base" && r.Status == http.StatusCreated {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the base layer %s was not mounted from library/base: %+v", baseLayer, reqs)
	}
	if n := imagetest.UploadedBytes(reqs); n > res.Images[0].BinarySize+16<<10 {
		t.Errorf("uploaded %d bytes; the binary layer is %d and the base should be mounted", n, res.Images[0].BinarySize)
	}
	digestRef, err := name.NewDigest(res.Reference)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(digestRef)
	if err != nil {
		t.Fatal(err)
	}
	if got := runImage(t, img); got != "on a named base uid=1000 tz=Europe/Paris" {
		t.Fatalf("binary printed %q", got)
	}
}

// Several platforms make an OCI index, each entry with its platform and
// its own SBOM referrer.
func TestMultiPlatformIndexWithSBOMReferrers(t *testing.T) {
	reg := imagetest.StartRegistry(t, "", "")
	dir := t.TempDir()
	writeService(t, dir, "everywhere")
	res, err := Build(context.Background(), Options{Dir: dir, Image: reg.Addr + "/acme/hello", Push: true,
		Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(res.Reference)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 2 || m.Manifests[0].Platform.Architecture != "amd64" || m.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index manifests %+v", m.Manifests)
	}
	for i, d := range m.Manifests {
		refs, err := remote.Referrers(ref.Context().Digest(d.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		rm, _ := refs.IndexManifest()
		if len(rm.Manifests) != 1 || rm.Manifests[0].ArtifactType != SBOMArtifactType || rm.Manifests[0].Digest.String() != res.Images[i].SBOM {
			t.Fatalf("referrers of %s: %+v; want the SBOM %s", d.Digest, rm.Manifests, res.Images[i].SBOM)
		}
		art, err := remote.Image(ref.Context().Digest(res.Images[i].SBOM))
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := art.Layers()
		rc, _ := ls[0].Uncompressed()
		var doc spdx
		if err := json.NewDecoder(rc).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
		if doc.SPDXVersion != "SPDX-2.3" || doc.Packages[0].Name != "example.com/hello" || doc.Packages[1].Name != "stdlib" {
			t.Fatalf("SBOM document: %+v", doc)
		}
	}
}
