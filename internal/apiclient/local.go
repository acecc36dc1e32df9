package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/pave-platform/pave/internal/auth"
)

// localToken finds the admin token of a control plane on this machine:
// the last source of a token, after --token, PAVE_TOKEN and the current
// context's token (which callers put in Client.Token). The server on
// loopback tells where its token file is (never what is in it); reading
// it needs this user's file system rights. "" when there is none.
func (c *Client) localToken(ctx context.Context) string {
	c.localOnce.Do(func() {
		u, err := url.Parse(c.Server)
		if err != nil || !isLoopbackHost(u.Hostname()) {
			return
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/api/v1/local-credential", nil)
		if err != nil {
			return
		}
		resp, err := c.httpClient().Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		var lc struct {
			TokenFile string `json:"tokenFile"`
			KeyFile   string `json:"keyFile"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&lc) != nil || lc.TokenFile == "" {
			return
		}
		c.localKeyFile = lc.KeyFile
		tok, err := auth.ReadLocalToken(lc.TokenFile)
		if err != nil {
			if !os.IsNotExist(err) && !os.IsPermission(err) {
				c.localProblem = err.Error()
			}
			return
		}
		c.local = tok
	})
	return c.local
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// LocalKey reads the local-proof key of a control plane on this machine
// (see auth.EnsureLocalKey): it exists to prove that a request comes from
// the operator on that machine, e.g. `pave cluster add --allow-exec`.
func (c *Client) LocalKey(ctx context.Context) ([]byte, error) {
	c.localToken(ctx)
	if c.localKeyFile == "" {
		return nil, fmt.Errorf("the control plane at %s is not on this machine's loopback (or does not say where its data directory is): run the command on the control plane's machine", c.Server)
	}
	key, err := auth.ReadLocalKey(c.localKeyFile)
	if err != nil {
		return nil, fmt.Errorf("local key of the control plane: %w (run the command as the user who runs `pave up`)", err)
	}
	return key, nil
}
