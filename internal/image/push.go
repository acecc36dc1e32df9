package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// publish pushes the artefact (an image or an index) under its first tag
// and tags it with the rest. ggcr asks the registry (HEAD) for every blob
// first and uploads only the missing ones, mounts blobs it read from
// another repository of the same registry, and PUTs each manifest only
// after all it references is there: a push cut off half-way leaves blobs
// but no tag, and the next push resumes from the blobs it finds.
func publish(ctx context.Context, repo name.Repository, tags []string, a artefact, opts []remote.Option) error {
	opts = append(opts, remote.WithContext(ctx))
	first := repo.Tag(tags[0])
	var err error
	if a.index != nil {
		err = remote.WriteIndex(first, a.index, opts...)
	} else {
		err = remote.Write(first, a.image, opts...)
	}
	if err != nil {
		return fmt.Errorf("push %s: %w", first, describeRegistryError(repo.RegistryStr(), err))
	}
	for _, t := range tags[1:] {
		if err := remote.Tag(repo.Tag(t), a.taggable(), opts...); err != nil {
			return fmt.Errorf("tag %s: %w", repo.Tag(t), describeRegistryError(repo.RegistryStr(), err))
		}
	}
	return nil
}

// attachSBOM pushes the SBOM artifact whose subject is desc.
func attachSBOM(ctx context.Context, repo name.Repository, doc []byte, desc v1.Descriptor, opts []remote.Option) (v1.Hash, error) {
	art, err := newSBOMArtifact(doc, desc)
	if err != nil {
		return v1.Hash{}, err
	}
	d, err := art.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(repo.Digest(d.String()), art, append(opts, remote.WithContext(ctx))...); err != nil {
		return v1.Hash{}, fmt.Errorf("push the SBOM of %s: %w", repo.Digest(desc.Digest.String()), describeRegistryError(repo.RegistryStr(), err))
	}
	return d, nil
}

// describeRegistryError says what went wrong in the user's terms: the
// registry is not there, refused the credentials, or failed.
func describeRegistryError(registry string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("registry %s refused the credentials (HTTP 401): log in with `docker login %s` or fix its entry in the Docker config ($DOCKER_CONFIG/config.json, default ~/.docker/config.json): %w", registry, registry, err)
		case http.StatusForbidden:
			return fmt.Errorf("registry %s denied access (HTTP 403): the credentials are valid but may not push there: %w", registry, err)
		}
		return fmt.Errorf("registry %s answered HTTP %d: %w", registry, terr.StatusCode, err)
	}
	var opErr *net.OpError
	var dnsErr *net.DNSError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial") {
		return fmt.Errorf("registry %s is unreachable (is it running, and is the registry in --image right?): %w", registry, err)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("registry %s: the connection failed during %s %s (run pave build again: blobs already uploaded are not sent twice): %w", registry, uerr.Op, uerr.URL, err)
	}
	return err
}

// artefact is what a build produces: one image, or an index of them.
type artefact struct {
	image v1.Image
	index v1.ImageIndex
}

func (a artefact) taggable() remote.Taggable {
	if a.index != nil {
		return a.index
	}
	return a.image
}

func (a artefact) descriptor() (v1.Descriptor, error) {
	if a.index != nil {
		d, err := partial.Descriptor(a.index)
		if err != nil {
			return v1.Descriptor{}, err
		}
		return *d, nil
	}
	d, err := partial.Descriptor(a.image)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, nil
}
