package apiclient

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI's --ca-file: the control plane's certificate must chain to the
// file's CA; without it the system roots are used and a self-signed
// certificate fails; a file without a certificate is an error, never a
// client that skips verification.
func TestCAFileVerifiesTheControlPlane(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := HTTPClientWithCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("with --ca-file of the server's CA: %v", err)
	}
	resp.Body.Close()

	CAFile = ""
	def, err := newHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without --ca-file a self-signed control plane was accepted: %v", err)
	}

	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o600)
	CAFile = empty
	t.Cleanup(func() { CAFile = "" })
	if _, err := newHTTPClient(); err == nil || !strings.Contains(err.Error(), "--ca-file") || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a --ca-file without a certificate: %v", err)
	}
}
