package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SBOMArtifactType is the artifactType of the SBOM referrer.
const SBOMArtifactType = "application/spdx+json"

// spdx is the part of SPDX 2.3 JSON an SBOM of a Go binary needs.
type spdx struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      spdxCreation   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []spdxRelation `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string       `json:"SPDXID"`
	Name             string       `json:"name"`
	VersionInfo      string       `json:"versionInfo,omitempty"`
	DownloadLocation string       `json:"downloadLocation"`
	FilesAnalyzed    bool         `json:"filesAnalyzed"`
	Checksums        []spdxSum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExtRef `json:"externalRefs,omitempty"`
}

type spdxSum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExtRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelation struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// sbomOf renders the SPDX document of a binary's build info: the main
// module, every module linked in (with go.sum's hash when known) and the
// Go standard library. It depends on the module list alone, not on the
// binary's bytes (the subject link names the image, hence the binary): a
// code change that adds no module keeps the same document, whose blob the
// registry already has, so the push sends only a new small manifest.
func sbomOf(bi *debug.BuildInfo) ([]byte, error) {
	id := func(path, version string) string {
		return "SPDXRef-Package-" + spdxIDUnsafe.ReplaceAllString(path+"-"+version, "-")
	}
	pkg := func(m *debug.Module) spdxPackage {
		p := spdxPackage{
			SPDXID: id(m.Path, m.Version), Name: m.Path, VersionInfo: m.Version,
			DownloadLocation: "NOASSERTION",
			ExternalRefs: []spdxExtRef{{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl",
				ReferenceLocator: "pkg:golang/" + m.Path + "@" + m.Version}},
		}
		if sum, ok := h1ToSHA256(m.Sum); ok {
			p.Checksums = []spdxSum{{Algorithm: "SHA256", ChecksumValue: sum}}
		}
		return p
	}
	main := bi.Main
	if main.Version == "" {
		main.Version = "(devel)"
	}
	doc := spdx{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              main.Path,
		DocumentNamespace: "https://pave.dev/spdx/" + modulesDigest(bi),
		CreationInfo:      spdxCreation{Created: epoch.Format("2006-01-02T15:04:05Z"), Creators: []string{"Tool: pave-build"}},
	}
	root := pkg(&main)
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, spdxRelation{"SPDXRef-DOCUMENT", "DESCRIBES", root.SPDXID})
	std := spdxPackage{SPDXID: id("stdlib", bi.GoVersion), Name: "stdlib", VersionInfo: bi.GoVersion,
		DownloadLocation: "https://go.dev/dl/", ExternalRefs: []spdxExtRef{{ReferenceCategory: "PACKAGE-MANAGER",
			ReferenceType: "purl", ReferenceLocator: "pkg:golang/stdlib@" + bi.GoVersion}}}
	doc.Packages = append(doc.Packages, std)
	doc.Relationships = append(doc.Relationships, spdxRelation{root.SPDXID, "DEPENDS_ON", std.SPDXID})
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		p := pkg(m)
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelation{root.SPDXID, "DEPENDS_ON", p.SPDXID})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// modulesDigest names the document by what it lists.
func modulesDigest(bi *debug.BuildInfo) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s\n", bi.GoVersion, bi.Main.Path, bi.Main.Version)
	for _, d := range bi.Deps {
		fmt.Fprintf(h, "%s %s %s\n", d.Path, d.Version, d.Sum)
		if d.Replace != nil {
			fmt.Fprintf(h, "=> %s %s %s\n", d.Replace.Path, d.Replace.Version, d.Replace.Sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// h1ToSHA256 turns go.sum's "h1:BASE64" (a SHA-256 of the module's file
// list) into hex; it is what the Go toolchain verified the module by.
func h1ToSHA256(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

// sbomArtifact is an OCI 1.1 artifact manifest: empty config, the SPDX
// document as its one layer, artifactType and subject set, so registries'
// referrers API (or the sha256-DIGEST tag fallback) lists it under the image.
type sbomArtifact struct {
	manifest []byte
	layer    v1.Layer
}

func newSBOMArtifact(doc []byte, subject v1.Descriptor) (v1.Image, error) {
	layer := static.NewLayer(doc, types.MediaType(SBOMArtifactType))
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	emptyConfig := []byte("{}")
	cd := v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Size: int64(len(emptyConfig)), Data: emptyConfig}
	cd.Digest, _, _ = v1.SHA256(bytes.NewReader(emptyConfig))
	subject = v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		ArtifactType  string          `json:"artifactType"`
		Config        v1.Descriptor   `json:"config"`
		Layers        []v1.Descriptor `json:"layers"`
		Subject       *v1.Descriptor  `json:"subject"`
	}{2, types.OCIManifestSchema1, SBOMArtifactType, cd, []v1.Descriptor{*ld}, &subject}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&sbomArtifact{manifest: raw, layer: layer})
}

func (a *sbomArtifact) RawConfigFile() ([]byte, error)      { return []byte("{}"), nil }
func (a *sbomArtifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *sbomArtifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *sbomArtifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	return nil, fmt.Errorf("sbom artifact: no blob %s", h)
}
