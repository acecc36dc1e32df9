package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/state"
)

// kubeconfigWith is a kubeconfig whose user is given by user (YAML flow).
func kubeconfigWith(user string) string {
	return `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: ` + user + `}]
contexts: [{name: ctx-a, context: {cluster: c, user: u}}]
current-context: ctx-a
`
}

// storeAsBeforeThePolicy writes a cluster the way a Pave without the
// kubeconfig policy stored it: the record and the kubeconfig copy, unchecked.
func storeAsBeforeThePolicy(t *testing.T, reg *Registry, name, kubeconfig string) {
	t.Helper()
	c := Cluster{Name: name, Kind: KindKubernetes, Namespace: "default", Router: "istio", Weight: 1, Health: Health{State: Healthy}, Added: nowUTC()}
	if err := os.MkdirAll(filepath.Dir(reg.KubeconfigPath(name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reg.KubeconfigPath(name), []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := state.PutJSON(ctx, reg.Store, StateKind, name, c, 0); err != nil {
		t.Fatal(err)
	}
}

// A kubeconfig stored before the policy existed is checked again when
// loaded: at start (RecheckKubeconfigs marks the cluster failed with the
// reason) and on every use (Clients refuses it, so client-go never runs
// its exec plugin or reads its files). Inline credentials and the exact
// file an admin allowed with --allow-exec still load; that file changed on
// disk does not.
func TestStoredKubeconfigsAreRecheckedAtLoad(t *testing.T) {
	reg := newRegistry(t)
	marker := filepath.Join(t.TempDir(), "plugin-ran")
	plugin := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\ntouch "+marker+"\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t\"}}'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	execUser := `{exec: {apiVersion: client.authentication.k8s.io/v1, command: ` + plugin + `, interactiveMode: Never}}`
	storeAsBeforeThePolicy(t, reg, "legacy-exec", kubeconfigWith(execUser))
	storeAsBeforeThePolicy(t, reg, "legacy-tokenfile", kubeconfigWith(`{tokenFile: /etc/passwd}`))
	storeAsBeforeThePolicy(t, reg, "legacy-inline", kubeconfigWith(`{token: inline-token}`))
	allowed, err := reg.AddKubernetes(ctx, Cluster{Name: "allowed-exec"}, []byte(kubeconfigWith(execUser)), AllowLocalReferences())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(allowed.LocalReferencesAllowed, "sha256:") {
		t.Fatalf("an --allow-exec registration records no allowance: %+v", allowed)
	}

	refused, err := reg.RecheckKubeconfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 {
		t.Fatalf("refused at start: %v, want legacy-exec and legacy-tokenfile", refused)
	}
	want := map[string]string{"legacy-exec": "users[u].user.exec (runs " + plugin + ")", "legacy-tokenfile": "users[u].user.tokenFile (/etc/passwd)"}
	for name, field := range want {
		c, err := reg.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"cluster " + name, "stored before Pave checked kubeconfigs", field, "pave cluster remove " + name} {
			if c.Health.State != Failed || !strings.Contains(c.Health.Reason, s) {
				t.Errorf("%s after the start's check: health %+v, want failed with a reason naming %q", name, c.Health, s)
			}
		}
		kc, err := reg.Clients(c)
		if err == nil {
			// What the old code did: the first request runs the plugin.
			_, _ = kc.Kube.Discovery().ServerVersion()
			t.Errorf("%s: clients built from a refused kubeconfig", name)
		} else if !errors.Is(err, ErrLocalReference) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: Clients: %v, want ErrLocalReference naming %s", name, err, field)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the exec plugin of a refused kubeconfig ran")
	}
	for _, name := range []string{"legacy-inline", "allowed-exec"} {
		c, _ := reg.Get(ctx, name)
		if c.Health.State != Healthy {
			t.Errorf("%s: health %+v after the check, want it untouched", name, c.Health)
		}
		if _, err := reg.Clients(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A second start does not append the same refusal again.
	evs, _ := reg.Store.Events(ctx, StateKind, "legacy-exec", 0, 0)
	if _, err := reg.RecheckKubeconfigs(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := reg.Store.Events(ctx, StateKind, "legacy-exec", 0, 0); len(again) != len(evs) || len(evs) != 1 || evs[0].Type != "kubeconfig-refused" {
		t.Errorf("events of legacy-exec: %v then %v, want one kubeconfig-refused", evs, again)
	}

	// The allowed file, changed on disk (another command), is refused.
	changed := strings.Replace(kubeconfigWith(execUser), plugin, "/bin/sh", 1)
	if err := os.WriteFile(reg.KubeconfigPath("allowed-exec"), []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := reg.Get(ctx, "allowed-exec")
	if _, err := reg.Clients(Cluster{Name: c.Name, Added: c.Added.Add(1), LocalReferencesAllowed: c.LocalReferencesAllowed}); err == nil || !strings.Contains(err.Error(), "changed on disk since an admin allowed it") {
		t.Errorf("an allowed kubeconfig changed on disk: %v", err)
	}

	// A caller cannot claim the allowance in the record it passes.
	if _, err := reg.AddKubernetes(ctx, Cluster{Name: "claims", LocalReferencesAllowed: allowed.LocalReferencesAllowed}, []byte(kubeconfigWith(execUser))); !errors.Is(err, ErrLocalReference) {
		t.Errorf("a record claiming the allowance: %v, want ErrLocalReference", err)
	}
}
