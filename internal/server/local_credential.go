package server

import (
	"errors"
	"net"
	"net/http"
	"path/filepath"

	"github.com/pave-platform/pave/internal/auth"
)

// LocalCredential is the answer of GET /api/v1/local-credential: where
// this control plane keeps its admin token file. Only the path is told,
// and only to a client on loopback; reading the file needs the file
// system rights of the user who runs `pave up` (it is mode 0600). This is
// how the CLI on the same machine works with no configuration while
// nothing is open without a credential.
type LocalCredential struct {
	TokenFile string `json:"tokenFile"`
	// KeyFile is the local-proof key (auth.EnsureLocalKey) beside it.
	KeyFile string `json:"keyFile"`
}

func localCredential(tokenFile string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if tokenFile == "" || err != nil || ip == nil || !ip.IsLoopback() {
			WriteError(w, http.StatusNotFound, errNoLocalCredential)
			return
		}
		abs, err := filepath.Abs(tokenFile)
		if err != nil {
			abs = tokenFile
		}
		WriteJSON(w, http.StatusOK, LocalCredential{TokenFile: abs, KeyFile: filepath.Join(filepath.Dir(abs), auth.LocalKeyFile)})
	})
}

var errNoLocalCredential = errors.New("no local credential for this client: pass a token with --token or PAVE_TOKEN")
