// Package kubetest starts real Kubernetes API servers (kube-apiserver and
// etcd, built by scripts/kube-apiserver.sh) for integration tests, with the
// published Istio and Gateway API CRDs installed. There is no kubelet,
// scheduler or controller-manager: PlayDeployments writes Deployment status
// as the Deployment controller would.
package kubetest

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pave-platform/pave/internal/kube"
)

// envtest logs through controller-runtime's logger, which complains on
// stderr unless one is set; the tests assert, they do not read its logs.
func init() { ctrllog.SetLogger(logr.Discard()) }

// Version is the Kubernetes version the binaries are built at.
const Version = "v1.37.2"

// Binaries returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else the cache scripts/kube-apiserver.sh fills.
func Binaries(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		tools := os.Getenv("PAVE_TOOLS")
		if tools == "" {
			cache := os.Getenv("XDG_CACHE_HOME")
			if cache == "" {
				home, _ := os.UserHomeDir()
				cache = filepath.Join(home, ".cache")
			}
			tools = filepath.Join(cache, "pave-tools")
		}
		dir = filepath.Join(tools, "k8s", Version)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("%s not built in %s: run scripts/kube-apiserver.sh (scripts/deps.sh does): %v", b, dir, err)
		}
	}
	return dir
}

// Cluster is one real API server with etcd.
type Cluster struct {
	Name   string
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for the cluster; its context is Name.
	Kubeconfig string
	Clients    *kube.Cluster

	env      *envtest.Environment
	stopOnce sync.Once
}

var (
	crdOnce  sync.Once
	crdPaths []string
	crdErr   error
)

// crds finds the published CRDs in the module cache, at the versions the
// project depends on.
func crds() ([]string, error) {
	crdOnce.Do(func() {
		dir := func(mod string) (string, error) {
			out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
			if err != nil || strings.TrimSpace(string(out)) == "" {
				if out, err = exec.Command("go", "mod", "download", "-json", mod).Output(); err != nil {
					return "", fmt.Errorf("find module %s: %w", mod, err)
				}
				out, err = exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
				if err != nil {
					return "", fmt.Errorf("find module %s: %w", mod, err)
				}
			}
			return strings.TrimSpace(string(out)), nil
		}
		istio, err := dir("istio.io/api")
		if err != nil {
			crdErr = err
			return
		}
		gw, err := dir("sigs.k8s.io/gateway-api")
		if err != nil {
			crdErr = err
			return
		}
		crdPaths = []string{filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml")}
		for _, f := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
			crdPaths = append(crdPaths, filepath.Join(gw, "config", "crd", "standard", "gateway.networking.k8s.io_"+f+".yaml"))
		}
	})
	return crdPaths, crdErr
}

// Start starts one cluster with the Istio and Gateway API CRDs installed
// and established; it is stopped when the test ends.
func Start(t testing.TB, name string) *Cluster {
	t.Helper()
	return StartN(t, name)[0]
}

// StartN starts clusters concurrently.
func StartN(t testing.TB, names ...string) []*Cluster {
	t.Helper()
	out := make([]*Cluster, len(names))
	var wg sync.WaitGroup
	errs := make([]any, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { errs[i] = recover() }()
			out[i] = startNoFatal(t, n)
		}()
	}
	wg.Wait()
	for i, e := range errs {
		if e != nil {
			t.Fatalf("cluster %s: %v", names[i], e)
		}
	}
	return out
}

// startNoFatal is Start for goroutines: t.Fatal may only run on the test's
// own goroutine, so failures panic and StartN reports them.
func startNoFatal(t testing.TB, name string) *Cluster {
	paths, err := crds()
	if err != nil {
		panic(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: Binaries(t), ErrorIfCRDPathMissing: true,
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true}}
	cfg, err := env.Start()
	if err != nil {
		panic(fmt.Sprintf("start kube-apiserver: %v", err))
	}
	c := &Cluster{Name: name, Config: cfg, env: env}
	t.Cleanup(c.Stop)
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.Kubeconfig = filepath.Join(dir, name+".kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(name, cfg), 0o600); err != nil {
		panic(err)
	}
	if c.Clients, err = kube.New(name, cfg); err != nil {
		panic(err)
	}
	return c
}

// Stop stops the API server and etcd (a cluster lost mid-test); it may be
// called more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() { _ = c.env.Stop() })
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func kubeconfig(name string, cfg *rest.Config) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\ncurrent-context: %s\n", name)
	fmt.Fprintf(&b, "clusters:\n- name: %s\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n", name, cfg.Host, b64(cfg.CAData))
	fmt.Fprintf(&b, "users:\n- name: %s\n  user:\n", name)
	if len(cfg.CertData) > 0 {
		fmt.Fprintf(&b, "    client-certificate-data: %s\n    client-key-data: %s\n", b64(cfg.CertData), b64(cfg.KeyData))
	}
	if cfg.BearerToken != "" {
		fmt.Fprintf(&b, "    token: %s\n", cfg.BearerToken)
	}
	fmt.Fprintf(&b, "contexts:\n- name: %s\n  context:\n    cluster: %s\n    user: %s\n", name, name, name)
	return []byte(b.String())
}

// Verdict is what PlayDeployments does with one Deployment.
type Verdict int

// Verdicts.
const (
	Ready     Verdict = iota // all replicas available
	Unready                  // status written, no replica available
	Failed                   // Progressing=False, ProgressDeadlineExceeded
	Untouched                // no status written at all
)

// PlayDeployments plays the Deployment controller until ctx ends: every
// Deployment whose status is stale gets the status the controller would
// write. judge (optional) decides per Deployment.
func (c *Cluster) PlayDeployments(ctx context.Context, judge func(*appsv1.Deployment) Verdict) {
	for ctx.Err() == nil {
		c.playOnce(ctx, judge)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Cluster) playOnce(ctx context.Context, judge func(*appsv1.Deployment) Verdict) {
	list, err := c.Clients.Kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range list.Items {
		d := &list.Items[i]
		v := Ready
		if judge != nil {
			v = judge(d)
		}
		if v == Untouched || d.Status.ObservedGeneration == d.Generation && statusMatches(d, v) {
			continue
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want}
		now := metav1.Now()
		switch v {
		case Ready:
			st.ReadyReplicas, st.AvailableReplicas = want, want
			st.Conditions = []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: "True", Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
				{Type: appsv1.DeploymentProgressing, Status: "True", Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
			}
		case Unready:
			st.UnavailableReplicas = want
			st.Conditions = []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentProgressing, Status: "True", Reason: "ReplicaSetUpdated", LastUpdateTime: now, LastTransitionTime: now},
			}
		case Failed:
			st.UnavailableReplicas = want
			st.Conditions = []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentProgressing, Status: "False", Reason: "ProgressDeadlineExceeded",
					Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", d.Name+"-7d9f"), LastUpdateTime: now, LastTransitionTime: now},
			}
		}
		d.Status = st
		_, _ = c.Clients.Kube.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	}
}

func statusMatches(d *appsv1.Deployment, v Verdict) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch v {
	case Ready:
		return d.Status.AvailableReplicas == want && d.Status.UpdatedReplicas == want
	case Unready:
		return d.Status.AvailableReplicas == 0 && len(d.Status.Conditions) == 1 && d.Status.Conditions[0].Reason == "ReplicaSetUpdated"
	case Failed:
		for _, c := range d.Status.Conditions {
			if c.Reason == "ProgressDeadlineExceeded" {
				return true
			}
		}
	}
	return false
}
