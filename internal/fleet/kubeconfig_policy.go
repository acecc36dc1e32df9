package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
)

// ErrLocalReference marks a kubeconfig that would make the control plane
// run a command or read a file of its own machine: an exec credential
// plugin, an auth-provider, a tokenFile, or a certificate, key or CA given
// as a file. Registered through the API, such a kubeconfig turns whoever
// may call the API into someone who runs commands as `pave up` (client-go
// runs the plugin at the first probe) or sends local files to a server of
// their choosing. Inline credentials (token, client-certificate-data,
// certificate-authority-data, ...) are fine.
var ErrLocalReference = errors.New("kubeconfig refers to a local command or file")

// CheckKubeconfig refuses local references, naming the first field (in a
// stable order) and the fix.
func CheckKubeconfig(kubeconfig []byte) error {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return fmt.Errorf("%w: the kubeconfig does not parse: %v", ErrInvalid, err)
	}
	var found []string
	for _, name := range slices.Sorted(maps.Keys(cfg.AuthInfos)) {
		u := cfg.AuthInfos[name]
		at := fmt.Sprintf("users[%s].user.", name)
		if u.Exec != nil {
			found = append(found, at+"exec (runs "+u.Exec.Command+")")
		}
		if u.AuthProvider != nil {
			found = append(found, at+"auth-provider ("+u.AuthProvider.Name+")")
		}
		if u.TokenFile != "" {
			found = append(found, at+"tokenFile ("+u.TokenFile+")")
		}
		if u.ClientCertificate != "" {
			found = append(found, at+"client-certificate ("+u.ClientCertificate+")")
		}
		if u.ClientKey != "" {
			found = append(found, at+"client-key ("+u.ClientKey+")")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		if ca := cfg.Clusters[name].CertificateAuthority; ca != "" {
			found = append(found, fmt.Sprintf("clusters[%s].cluster.certificate-authority (%s)", name, ca))
		}
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w: %s; inline the credentials instead (token, client-certificate-data, client-key-data, certificate-authority-data, e.g. `kubectl config view --raw --flatten --minify`), "+
		"or, as an admin on the control plane's machine, pass --allow-exec to `pave cluster add`", ErrInvalid, ErrLocalReference, strings.Join(found, ", "))
}

// AddOption changes how AddKubernetes treats a kubeconfig.
type AddOption func(*addOptions)

type addOptions struct{ allowLocal bool }

// AllowLocalReferences lets a kubeconfig keep exec plugins and file
// references. Only for an admin's explicit --allow-exec, proved by the
// local CLI (see server.ClustersAPI); never for the API alone.
func AllowLocalReferences() AddOption { return func(o *addOptions) { o.allowLocal = true } }

// kubeconfigDigest names one exact kubeconfig.
func kubeconfigDigest(kubeconfig []byte) string {
	sum := sha256.Sum256(kubeconfig)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// checkStored applies the policy again to a kubeconfig read back from the
// data directory, before client-go sees it: one stored before the policy
// existed (or changed on disk since) may hold an exec plugin or a file
// reference nobody allowed. Only the exact file an admin registered with
// --allow-exec keeps them.
func checkStored(c Cluster, path string, kubeconfig []byte) error {
	if c.LocalReferencesAllowed != "" && c.LocalReferencesAllowed == kubeconfigDigest(kubeconfig) {
		return nil
	}
	if err := CheckKubeconfig(kubeconfig); err != nil {
		why := "it was stored before Pave checked kubeconfigs"
		if c.LocalReferencesAllowed != "" {
			why = "it changed on disk since an admin allowed it with --allow-exec"
		}
		return fmt.Errorf("cluster %s: the stored kubeconfig %s is refused and not used (%s); remove the cluster (pave cluster remove %s) and add it again: %w",
			c.Name, path, why, c.Name, err)
	}
	return nil
}

// RecheckKubeconfigs applies the kubeconfig policy to every stored
// Kubernetes cluster, as `pave up` does at start. A refused cluster is
// marked failed with the reason (so `pave cluster list` and the failover
// controller see it at once, and its traffic moves away) and is never
// connected: Clients refuses it on every use. It returns one error per
// refused cluster, for the start-up log.
func (r *Registry) RecheckKubeconfigs(ctx context.Context) ([]error, error) {
	all, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	var refused []error
	for _, c := range all {
		if c.Kind != KindKubernetes {
			continue
		}
		path := r.KubeconfigPath(c.Name)
		data, err := os.ReadFile(path)
		if err != nil {
			refused = append(refused, fmt.Errorf("cluster %s: reading its kubeconfig: %w", c.Name, err))
			continue
		}
		cerr := checkStored(c, path, data)
		if cerr == nil {
			continue
		}
		refused = append(refused, cerr)
		if c.Health.State == Failed && c.Health.Reason == cerr.Error() {
			continue
		}
		if _, err := r.Update(ctx, c.Name, func(c *Cluster) error {
			c.Health = Health{State: Failed, Since: nowUTC(), Reason: cerr.Error()}
			return nil
		}); err != nil {
			return refused, err
		}
		r.event(ctx, c.Name, "kubeconfig-refused", map[string]string{"reason": cerr.Error()})
	}
	return refused, nil
}
