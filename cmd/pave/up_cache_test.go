package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/buildcache"
	"github.com/pave-platform/pave/internal/state"
)

// The control plane's tokens open the build cache of `pave up`: those who
// may deploy write build results, viewers read them, ingest tokens and
// strangers get nothing.
func TestBuildCacheTakesAPITokens(t *testing.T) {
	t.Parallel()
	store, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	tokens := auth.Tokens{Store: store}
	a := apiTokenRoles{tokens}
	for role, want := range map[auth.Role]buildcache.Role{
		auth.RoleAdmin: buildcache.RoleWriter, auth.RoleDeployer: buildcache.RoleWriter,
		auth.RoleViewer: buildcache.RoleReader, auth.RoleIngest: buildcache.RoleNone,
	} {
		_, secret, err := tokens.Create(ctx, "t", role)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Authorize(ctx, secret); got != want {
			t.Errorf("a %s token is a cache %s, want %s", role, got, want)
		}
	}
	if got, err := a.Authorize(ctx, "pave_nope_nope"); got != buildcache.RoleNone || err == nil {
		t.Errorf("an unknown token: %s, %v", got, err)
	}
}
