package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/buildcache"
	"github.com/pave-platform/pave/internal/buildcache/gocacheprog"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"github.com/pave-platform/pave/internal/config"
)

func init() { register(cacheCommand) }

func cacheCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Shared Go build cache: a server, and the GOCACHEPROG client that uses it",
		Long: `A build cache every CI runner shares, through Go's GOCACHEPROG.

  pave cache serve --addr 127.0.0.1:7077 --dir /var/cache/pave
  GOCACHEPROG="pave cache gocacheprog" PAVE_CACHE_URL=http://127.0.0.1:7077 go build ./...

See docs/buildcache.md.`,
	}
	cmd.AddCommand(cacheServeCommand(), cacheProgCommand())
	return cmd
}

// cacheServerOptions are the server's settings, shared by `pave cache
// serve` and `pave up --cache-addr`.
type cacheServerOptions struct {
	addr, dir, tokens, maxSize, shared string
}

func cacheServeCommand() *cobra.Command {
	var o cacheServerOptions
	cmd := &cobra.Command{
		Use:   "serve [--addr HOST:PORT] [--dir DIR] [--tokens FILE]",
		Short: "Serve a shared build cache (bazel-remote's HTTP API, and /go/ for the gocacheprog client)",
		Long: `Serve a shared build cache over HTTP.

Without --tokens it listens on loopback only and serves reads and writes from
there. With --tokens FILE every request needs a token: lines "writer TOKEN"
may write (CI on the main branch), "reader TOKEN" may only read;
"ROLE sha256:HEX" keeps only the token's SHA-256 in the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			srv, ln, err := startCacheServer(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "pave cache: serving %s on http://%s\n", o.dir, ln.Addr())
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:7077", "listen address; a non-loopback address needs --tokens")
	f.StringVar(&o.dir, "dir", defaultCacheDir("server"), "directory of the disk tier")
	f.StringVar(&o.tokens, "tokens", "", "tokens file (lines: reader|writer TOKEN); without it only loopback clients are served")
	f.StringVar(&o.maxSize, "max-size", "10GiB", "bound of the disk tier; least recently used entries go first")
	f.StringVar(&o.shared, "shared-store", "", "optional shared tier behind the disk: dir:/abs/path or s3://bucket/prefix?endpoint=host:port&insecure=1 (AWS_* credentials)")
	return cmd
}

func defaultCacheDir(sub string) string {
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(".pave", "buildcache")
	}
	return filepath.Join(d, "pave", "buildcache-"+sub)
}

// startCacheServer opens the tiers and binds the listener; errors name the
// flag to fix.
func startCacheServer(ctx context.Context, o cacheServerOptions) (*http.Server, net.Listener, error) {
	var authz buildcache.Authorizer
	if o.tokens != "" {
		t, err := buildcache.LoadTokens(o.tokens)
		if err != nil {
			return nil, nil, fmt.Errorf("--tokens: %w", err)
		}
		authz = t
	} else if !config.IsLoopback(o.addr) {
		return nil, nil, fmt.Errorf("--addr %s is not a loopback address: serving other machines needs --tokens FILE (lines \"writer TOKEN\" / \"reader TOKEN\")", o.addr)
	}
	return newCacheServer(ctx, o, authz)
}

// newCacheServer opens the tiers and binds the listener.
func newCacheServer(ctx context.Context, o cacheServerOptions, authz buildcache.Authorizer) (*http.Server, net.Listener, error) {
	max, err := config.ParseSize(o.maxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("--max-size: %w", err)
	}
	disk, err := tier.OpenDisk(o.dir, tier.DiskOptions{MaxBytes: max, Sync: true})
	if err != nil {
		return nil, nil, fmt.Errorf("--dir: %w", err)
	}
	store := &buildcache.Store{Disk: disk}
	if o.shared != "" {
		if store.Blob, err = buildcache.OpenBlob(ctx, o.shared); err != nil {
			return nil, nil, fmt.Errorf("--shared-store: %w", err)
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	srv := &http.Server{Handler: buildcache.NewServer(store, authz), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv, ln, nil
}

func cacheProgCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "gocacheprog",
		Short: "The GOCACHEPROG program: GOCACHEPROG=\"pave cache gocacheprog\" go build ./...",
		Long: `Speak Go's GOCACHEPROG protocol on stdin/stdout, with a local disk tier in
front of a shared cache server. Configured by the environment:

  PAVE_CACHE_URL    the server, e.g. http://cache.internal:7077 (unset: local tier only)
  PAVE_CACHE_TOKEN  a reader or writer token of that server
  PAVE_CACHE_DIR    the local tier (default: <user cache dir>/pave/gocache)
  PAVE_CACHE_MAX_SIZE   bound of the local tier (default 10GiB; least recently used go first)
  PAVE_CACHE_VERBOSE=1  counts of hits and uploads on stderr at the end

It never fails a build because of the server: when the server is down or
slow it says so once on stderr and goes on with the local tier.

The same program ships alone as pave-gocacheprog (go install
github.com/pave-platform/pave/cmd/pave-gocacheprog), which starts in a few
milliseconds instead of the pave binary's ~150 ms; each go command waits for
its cache program to start, so prefer it in CI.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := gocacheprog.Run(os.Stdin, os.Stdout, os.Stderr); err != nil && !errors.Is(err, os.ErrClosed) {
				return err
			}
			return nil
		},
	}
}
