// Package kubetest starts real Kubernetes API servers (kube-apiserver and
// etcd, built by scripts/kube-apiserver.sh) for integration tests, with the
// published Istio and Gateway API CRDs installed, so objects are validated
// by the real schemas. There is no kubelet, scheduler or controller-manager:
// PlayDeployments writes Deployment status as the Deployment controller
// would. docs/kubernetes-testing.md explains the set-up.
package kubetest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/pave-platform/pave/internal/kube"
)

// envtest logs through controller-runtime's logger, which complains on
// stderr unless one is set; the tests assert, they do not read its logs.
func init() { ctrllog.SetLogger(logr.Discard()) }

// Version is the Kubernetes version scripts/kube-apiserver.sh builds; the
// cache directory is keyed by it.
const Version = "v1.37.2"

// NotBuilt starts the failure message of Binaries, so a missing binary
// says how to get it.
const NotBuilt = "kube-apiserver not built: run scripts/kube-apiserver.sh (or scripts/deps.sh)"

// Binaries returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS if set, else the cache scripts/kube-apiserver.sh
// fills ($PAVE_TOOLS/k8s/Version, PAVE_TOOLS defaulting to
// ~/.cache/pave-tools as in scripts/deps.sh). A missing binary fails the
// test: the integration tests never skip silently.
func Binaries(t testing.TB) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func binaries() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	from := "$KUBEBUILDER_ASSETS"
	if dir == "" {
		tools := os.Getenv("PAVE_TOOLS")
		if tools == "" {
			cache := os.Getenv("XDG_CACHE_HOME")
			if cache == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return "", fmt.Errorf("%s: no cache directory: %w", NotBuilt, err)
				}
				cache = filepath.Join(home, ".cache")
			}
			tools = filepath.Join(cache, "pave-tools")
		}
		dir, from = filepath.Join(tools, "k8s", Version), "the cache"
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err == nil && fi.Mode().Perm()&0o111 == 0 {
			err = errors.New("not executable")
		}
		if err != nil {
			return "", fmt.Errorf("%s (%s missing in %s, %s: %v)", NotBuilt, b, from, dir, err)
		}
	}
	return dir, nil
}

// Cluster is one real API server with its own etcd.
type Cluster struct {
	Name   string
	Config *rest.Config
	// Kubeconfig is a kubeconfig file (in the test's temporary directory)
	// whose only context, the current one, is Name.
	Kubeconfig string
	Clients    *kube.Cluster

	env      *envtest.Environment
	stopOnce sync.Once
}

// clusterName keeps names safe in the kubeconfig's YAML and file name.
var clusterName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Start starts one cluster with the Istio and Gateway API CRDs installed
// and Established; it is stopped when the test ends.
func Start(t testing.TB, name string) *Cluster {
	t.Helper()
	return StartN(t, name)[0]
}

// StartN starts one cluster per name, concurrently (each takes seconds,
// mostly waiting), all stopped when the test ends.
func StartN(t testing.TB, names ...string) []*Cluster {
	t.Helper()
	seen := map[string]bool{}
	for _, n := range names {
		if !clusterName.MatchString(n) || seen[n] {
			t.Fatalf("kubetest.StartN(%q): cluster names must be distinct DNS labels (seoul, us-east-1)", names)
		}
		seen[n] = true
	}
	bin := Binaries(t)
	crdDirs, err := crdPaths()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	out := make([]*Cluster, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { out[i], errs[i] = start(bin, crdDirs, dir, n) })
	}
	wg.Wait()
	// Register every started cluster's cleanup before failing on another.
	for _, c := range out {
		if c != nil {
			t.Cleanup(c.Stop)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// start does not touch t: it runs on its own goroutine, where t.Fatal
// must not be called.
func start(bin string, crdDirs []string, dir, name string) (*Cluster, error) {
	local := false
	env := &envtest.Environment{
		// Never the cluster of $USE_EXISTING_CLUSTER's kubeconfig: tests
		// create and delete freely.
		UseExistingCluster:    &local,
		BinaryAssetsDirectory: bin,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crdDirs, ErrorIfPathMissing: true},
		ErrorIfCRDPathMissing: true,
		// envtest's 20 s default is for an idle machine: with the test
		// suite's packages and tests running at once on 2 cores, several
		// kube-apiservers starting together each take longer, and a start
		// that times out is retried from scratch (more load, not less).
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("cluster %s: start kube-apiserver and etcd from %s: %w", name, bin, err)
	}
	c := &Cluster{Name: name, Config: cfg, env: env}
	if err := c.init(dir); err != nil {
		c.Stop()
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	return c, nil
}

func (c *Cluster) init(dir string) error {
	// Client-side throttling only slows the tests down (the defaults allow
	// 5 requests a second); the API server here serves one test.
	c.Config.QPS, c.Config.Burst = 500, 1000
	if err := waitEstablished(c.Config, c.env.CRDs); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(dir, c.Name+".kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.Name, c.Config), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	var err error
	c.Clients, err = kube.New(c.Name, c.Config)
	return err
}

// Stop stops the API server and etcd, as when a cluster becomes
// unreachable mid-test; later calls do nothing.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() { _ = c.env.Stop() })
}

// waitEstablished waits for the condition the API server sets once a CRD's
// resource is served; envtest only waits for discovery to list it.
func waitEstablished(cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	if len(crds) == 0 {
		return errors.New("no CRDs were installed: the Istio and Gateway API CRD files held none")
	}
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, crd := range crds {
		for {
			got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("CRD %s not Established within a minute (last error: %v)", crd.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// kubeconfig writes the sections in the order people write them (clusters,
// users, contexts), which some tests rely on to swap the user out.
func kubeconfig(name string, cfg *rest.Config) []byte {
	server := cfg.Host
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	b64 := base64.StdEncoding.EncodeToString
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Config\ncurrent-context: %s\n", name)
	fmt.Fprintf(&b, "clusters:\n- name: %s\n  cluster:\n    server: %s\n    certificate-authority-data: %s\n", name, server, b64(cfg.CAData))
	fmt.Fprintf(&b, "users:\n- name: %s\n  user:\n", name)
	if len(cfg.CertData) > 0 {
		fmt.Fprintf(&b, "    client-certificate-data: %s\n    client-key-data: %s\n", b64(cfg.CertData), b64(cfg.KeyData))
	}
	if cfg.BearerToken != "" {
		fmt.Fprintf(&b, "    token: %s\n", cfg.BearerToken)
	}
	fmt.Fprintf(&b, "contexts:\n- name: %s\n  context:\n    cluster: %s\n    user: %s\n    namespace: default\n", name, name, name)
	return []byte(b.String())
}

var (
	crdOnce sync.Once
	crdDirs []string
	crdErr  error
)

// crdPaths finds the published CRDs in the module cache, at the versions
// the project's go.mod depends on, so the tests validate against the same
// schemas as the typed clients Pave is built with.
func crdPaths() ([]string, error) {
	crdOnce.Do(func() {
		istio, err := moduleDir("istio.io/api")
		if err != nil {
			crdErr = err
			return
		}
		gw, err := moduleDir("sigs.k8s.io/gateway-api")
		if err != nil {
			crdErr = err
			return
		}
		crdDirs = []string{
			filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml"),
			filepath.Join(gw, "config", "crd", "standard"),
		}
		for _, p := range crdDirs {
			if _, err := os.Stat(p); err != nil {
				crdErr = fmt.Errorf("CRDs for the tests: %w (is the module cache complete? try go mod download)", err)
				return
			}
		}
	})
	return crdDirs, crdErr
}

// moduleDir is the module's directory in the module cache, downloading
// it first when the cache lacks it (a fresh machine, or a cleaned cache).
func moduleDir(mod string) (string, error) {
	list := func() (string, error) {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
		if err != nil {
			return "", fmt.Errorf("go list -m %s (for its CRDs): %w%s", mod, err, stderr(err))
		}
		return strings.TrimSpace(string(out)), nil
	}
	dir, err := list()
	if err != nil || dir != "" {
		return dir, err
	}
	if _, err := exec.Command("go", "mod", "download", mod).Output(); err != nil {
		return "", fmt.Errorf("go mod download %s (for its CRDs): %w%s", mod, err, stderr(err))
	}
	if dir, err = list(); err == nil && dir == "" {
		err = fmt.Errorf("module %s is not in the module cache even after go mod download", mod)
	}
	return dir, err
}

func stderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
