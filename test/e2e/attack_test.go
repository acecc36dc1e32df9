package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/testproc"
	"github.com/pave-platform/pave/web"
)

// evilPage auto-submits a form to the API, as any site could.
const evilPage = `<!doctype html><title>cute cats</title>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="%s/api/v1/tokens" target="sink" enctype="text/plain">
<input name='{"role":"admin","x":"' value='"}'></form>
<script>document.getElementById('f').submit(); window.formSent = true;</script>`

// TestBrowserAttacksFail: a page of another origin and a DNS-rebinding
// page try to act on the API in Chromium; every try fails and the state
// (tokens, the release, its weights) is as before.
func TestBrowserAttacksFail(t *testing.T) {
	requireBrowser(t)
	rig := releasetest.NewRig(t, nil)
	srv := server.New(server.Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, Log: slog.New(slog.DiscardHandler)})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)
	server.ReleaseAPI{Engine: rig.Engine}.Register(srv)
	api := httptest.NewServer(srv)
	defer api.Close()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, evilPage, api.URL)
	}))
	defer evil.Close()

	ctx := context.Background()
	rel := release.New("shop", "v2")
	rel.Spec.Binary = "/srv/shop-v2"
	rel.Spec.StepDuration = release.Duration(time.Hour)
	if _, err := rig.Engine.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if err := rig.Engine.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		toks, _ := auth.Tokens{Store: rig.Store}.List(ctx)
		r, _ := rig.Engine.Get(ctx, "shop-v2")
		w, _ := rig.Router.Weights(ctx, "shop")
		return fmt.Sprintf("tokens=%d phase=%s step=%d weights=%v", len(toks), r.Status.Phase, r.Status.Step, w)
	}
	before := state()

	if err := testproc.RunBrowserScript(ctx, t, testproc.BrowserScript{Dir: ".", Name: "attack.mjs", Args: []string{api.URL, evil.URL}}); err != nil {
		t.Fatal(err)
	}
	if after := state(); after != before {
		t.Fatalf("the attacks changed state:\nbefore %s\nafter  %s", before, after)
	}
}
