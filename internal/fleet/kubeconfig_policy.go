package fleet

import (
	"errors"
	"fmt"
	"maps"
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
