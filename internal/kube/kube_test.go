// An external test package: kubetest imports kube.
package kube_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/kube/kubetest"
)

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- name: seoul
  cluster: {server: "https://127.0.0.1:6443"}
- name: busan
  cluster: {server: "https://127.0.0.1:6444"}
users:
- name: admin
  user: {token: secret}
contexts:
- name: seoul
  context: {cluster: seoul, user: admin}
- name: busan
  context: {cluster: busan, user: admin}
`

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRefusesBadKubeconfigs(t *testing.T) {
	tests := []struct {
		name, content, context string
		path                   string // overrides the written file
		want                   []string
	}{
		{name: "does not parse", content: "apiVersion: v1\nclusters: [seoul\n", want: []string{"does not parse"}},
		{name: "not a kubeconfig", content: "clusters: 42\n", want: []string{"does not parse"}},
		{name: "missing context", content: twoContexts, context: "tokyo", want: []string{`no context "tokyo"`, "busan", "seoul"}},
		{name: "no current context", content: twoContexts, want: []string{"no current-context", "--context"}},
		{name: "missing file", path: filepath.Join(t.TempDir(), "absent.kubeconfig"), want: []string{"absent.kubeconfig"}},
		{name: "no file given", path: "-", want: []string{"--kubeconfig"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			switch path {
			case "":
				path = write(t, "cluster.kubeconfig", tt.content)
				tt.want = append(tt.want, path) // every error names the file
			case "-":
				path = ""
			}
			cfg, err := kube.Load(path, tt.context)
			if err == nil {
				t.Fatalf("Load(%q, %q) = %v, want an error", path, tt.context, cfg.Host)
			}
			if !errors.Is(err, kube.ErrKubeconfig) {
				t.Errorf("error %q is not ErrKubeconfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadPicksTheContext(t *testing.T) {
	path := write(t, "two.kubeconfig", twoContexts)
	for ctx, server := range map[string]string{"seoul": "https://127.0.0.1:6443", "busan": "https://127.0.0.1:6444"} {
		cfg, err := kube.Load(path, ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != server || cfg.BearerToken != "secret" {
			t.Errorf("context %s: host %s token %q, want %s and the admin token", ctx, cfg.Host, cfg.BearerToken, server)
		}
	}
}

// TestLoadAndNewAgainstRealClusters goes through a kubeconfig file holding
// two real API servers: each context reaches its own cluster, and every
// client New builds (core, dynamic, Istio, Gateway API) works.
func TestLoadAndNewAgainstRealClusters(t *testing.T) {
	cs := kubetest.StartN(t, "seoul", "busan")
	merged := clientcmdapi.NewConfig()
	for _, c := range cs {
		kc, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		merged.Clusters[c.Name], merged.AuthInfos[c.Name], merged.Contexts[c.Name] = kc.Clusters[c.Name], kc.AuthInfos[c.Name], kc.Contexts[c.Name]
	}
	merged.CurrentContext = "busan"
	path := filepath.Join(t.TempDir(), "fleet.kubeconfig")
	if err := clientcmd.WriteToFile(*merged, path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	clusters := map[string]*kube.Cluster{}
	for _, name := range []string{"seoul", ""} { // "" is the current context, busan
		cfg, err := kube.Load(path, name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := kube.New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		clusters[name] = c
	}
	seoul, busan := clusters["seoul"], clusters[""]

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if _, err := seoul.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := busan.Kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace created through the seoul context, read through busan: err = %v, want NotFound", err)
	}
	if _, err := seoul.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, "shop", metav1.GetOptions{}); err != nil {
		t.Errorf("dynamic client: %v", err)
	}
	if _, err := seoul.Istio.NetworkingV1().VirtualServices("shop").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("Istio client: %v", err)
	}
	if _, err := busan.Gateway.GatewayV1().HTTPRoutes("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("Gateway API client: %v", err)
	}
}
