package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/image"
)

func init() { register(buildCommand) }

func buildCommand(g *globals) *cobra.Command {
	var (
		o         image.Options
		platforms string
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "build [DIR] --image REGISTRY/NAME [--tag T] [--platform linux/amd64,linux/arm64] [--push | --tarball FILE]",
		Short: "Build a Go service into a layered OCI image, without Docker, and push what the registry lacks",
		Long: `Build the Go main package in DIR (default .) into a reproducible OCI image:
a base layer (scratch with CA certificates, time zones and a non-root user, or
image.base in .pave.yaml), an assets layer (kodata/, if any) and the static
binary's layer. Several --platform values make an OCI image index.

With --push, only blobs the registry lacks are uploaded (after a one-line
change: the binary layer, the config and the manifest), the tag is written
last, and an SPDX SBOM of the binary is attached as an OCI referrer.
Credentials come from the Docker config (docker login, credential helpers).

It prints the digest reference REGISTRY/NAME@sha256:..., what
pave release --image takes. GOCACHEPROG, GOFLAGS and GOPROXY reach go build.`,
		Example: `  pave build --image ghcr.io/acme/orders --tag v1.4.0 --push
  pave build ./cmd/orders --image 127.0.0.1:5000/orders --platform linux/amd64,linux/arm64 --push
  pave build --image ghcr.io/acme/orders --tarball orders.tar   # docker load < orders.tar
  pave release orders --version v1.4.0 --image "$(pave build --image ghcr.io/acme/orders --push)"`,
		Args:        cobra.MaximumNArgs(1),
		Annotations: map[string]string{annotationLocal: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Dir = "."
			if len(args) == 1 {
				o.Dir = args[0]
			}
			ps, err := image.ParsePlatforms(platforms)
			if err != nil {
				return usageError(cmd, err)
			}
			o.Platforms = ps
			if _, err := image.ParseRepository(o.Image); err != nil {
				return usageError(cmd, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			o.Log = cmd.ErrOrStderr()
			res, err := image.Build(ctx, o)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), res, func(w io.Writer) { fmt.Fprintln(w, res.Reference) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "repository to build for, with its registry: REGISTRY/NAME (required)")
	f.StringSliceVar(&o.Tags, "tag", []string{"latest"}, "tags to push (repeatable or comma-separated)")
	f.StringVar(&platforms, "platform", "linux/amd64", "platforms, comma-separated: linux/amd64,linux/arm64,linux/arm/v7")
	f.BoolVar(&o.Push, "push", false, "push to the registry (only missing blobs; tag last)")
	f.StringVar(&o.Tarball, "tarball", "", "write a tarball `docker load` reads instead of pushing (one platform)")
	f.StringVar(&o.Source, "source", "", "org.opencontainers.image.source label (default: git remote origin)")
	f.StringVar(&o.Revision, "revision", "", "org.opencontainers.image.revision label (default: git HEAD)")
	f.DurationVar(&timeout, "timeout", 0, "give up after this long, e.g. 10m; 0 waits")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}
