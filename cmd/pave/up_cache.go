package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/buildcache"
	"github.com/pave-platform/pave/internal/config"
)

// startBuildCache serves the shared Go build cache when cache-addr is set,
// with its disk tier under the data directory. Off loopback it takes the
// control plane's API tokens: deployer and admin write, viewer reads.
func startBuildCache(ctx context.Context, cfg config.Config, tokens auth.Tokens, log *slog.Logger) error {
	if cfg.CacheAddr == "" {
		return nil
	}
	o := cacheServerOptions{addr: cfg.CacheAddr, dir: cfg.DataDir + "/buildcache", maxSize: cfg.CacheMaxSize, shared: cfg.CacheSharedStore}
	if o.maxSize == "" {
		o.maxSize = "10GiB"
	}
	var authz buildcache.Authorizer
	if !config.IsLoopback(o.addr) || cfg.RequireAuth {
		authz = apiTokenRoles{tokens}
	}
	srv, ln, err := newCacheServer(ctx, o, authz)
	if err != nil {
		return fmt.Errorf("setting cache-addr: %w", err)
	}
	log.Info("build cache serving", "addr", ln.Addr().String(), "dir", o.dir)
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return nil
}

// apiTokenRoles maps the control plane's roles onto the cache's: those
// who may deploy may write build results; viewers may read them.
type apiTokenRoles struct{ tokens auth.Tokens }

func (a apiTokenRoles) Authorize(ctx context.Context, token string) (buildcache.Role, error) {
	_, role, err := a.tokens.Verify(ctx, token)
	if err != nil {
		return buildcache.RoleNone, buildcache.ErrUnauthorized
	}
	switch role {
	case auth.RoleDeployer, auth.RoleAdmin:
		return buildcache.RoleWriter, nil
	case auth.RoleViewer:
		return buildcache.RoleReader, nil
	}
	return buildcache.RoleNone, buildcache.ErrUnauthorized
}
