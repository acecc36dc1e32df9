package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pave-platform/pave/internal/kube/kubetest"
	"github.com/pave-platform/pave/internal/server"
)

// TestClusterCommandsAgainstARealAPIServer: pave cluster add registers a
// real cluster and probes it; a kubeconfig that does not parse, and one
// whose user the API server does not know, are reported clearly and leave
// the other clusters alone.
func TestClusterCommandsAgainstARealAPIServer(t *testing.T) {
	t.Parallel()
	kc := kubetest.Start(t, "seoul")
	p := startUp(t, t.TempDir())
	env := []string{"PAVE_SERVER=" + p.api}

	out, err := pave(t, env, "cluster", "add", "seoul", "--kubeconfig", kc.Kubeconfig, "--datacenter", "kr-1", "--router", "gatewayapi", "-o", "json")
	if err != nil {
		t.Fatalf("cluster add: %v\n%s", err, out)
	}
	var v server.ClusterView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Reachable == nil || !*v.Reachable || v.Router != "gatewayapi" || v.Datacenter != "kr-1" {
		t.Fatalf("added %+v", v)
	}

	bad := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(bad, []byte("clusters: [oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, env, "cluster", "add", "busan", "--kubeconfig", bad)
	if err == nil || !strings.Contains(out, "cluster busan") || !strings.Contains(out, "does not parse") || !strings.Contains(out, bad) {
		t.Fatalf("a broken kubeconfig: %v\n%s", err, out)
	}

	// A kubeconfig whose token the API server does not know.
	cfg, err := clientcmd.LoadFromFile(kc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		*ai = clientcmdapi.AuthInfo{Token: "not-a-real-token"}
	}
	sf := filepath.Join(t.TempDir(), "stranger.yaml")
	if err := clientcmd.WriteToFile(*cfg, sf); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, env, "cluster", "add", "jeju", "--kubeconfig", sf)
	if err != nil || !strings.Contains(out, "does not answer") || !strings.Contains(out, "not authorised") {
		t.Fatalf("an unauthorised user is registered with a warning: %v\n%s", err, out)
	}
	if strings.Contains(out, "not-a-real-token") {
		t.Fatal("the token was printed")
	}
	out, err = pave(t, env, "cluster", "status", "jeju")
	if err != nil || !strings.Contains(out, "NOT reachable") {
		t.Fatalf("status of jeju: %v\n%s", err, out)
	}
	out, err = pave(t, env, "cluster", "status", "seoul")
	if err != nil || !strings.Contains(out, "reachable now") || strings.Contains(out, "NOT reachable") {
		t.Fatalf("status of seoul: %v\n%s", err, out)
	}
	out, err = pave(t, env, "cluster", "list")
	if err != nil || !strings.Contains(out, "seoul") || !strings.Contains(out, "jeju") || strings.Contains(out, "busan") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err = pave(t, env, "cluster", "remove", "jeju"); err != nil {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if out, err = pave(t, env, "cluster", "remove", "local"); err == nil || !strings.Contains(out, "embedded cluster") {
		t.Fatalf("removing the embedded cluster: %v\n%s", err, out)
	}
}
