package apiclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// The CLI's --client-certificate/--client-key: a control plane that
// requires client certificates (--tls-client-ca) answers a client that
// presents one signed by its CA and refuses one without; giving only one
// of the two files is an error naming both flags.
func TestClientCertificateReachesAControlPlaneThatRequiresOne(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	cliKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cliTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "operator"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cliDER, err := x509.CreateCertificate(rand.Reader, cliTmpl, caCert, &cliKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cliDER}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	serverCA := filepath.Join(dir, "server-ca.pem")
	os.WriteFile(serverCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	t.Cleanup(func() { CAFile, ClientCertFile, ClientKeyFile = "", "", "" })
	CAFile = serverCA
	without, err := newHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := without.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a control plane requiring client certificates answered a client without one")
	}

	ClientCertFile, ClientKeyFile = certFile, keyFile
	with, err := newHTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := with.Get(srv.URL)
	if err != nil {
		t.Fatalf("with --client-certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "operator" {
		t.Errorf("the server saw client %q, want operator", body)
	}

	ClientKeyFile = ""
	if _, err := newHTTPClient(); err == nil || !strings.Contains(err.Error(), "--client-key") {
		t.Errorf("a certificate without its key: %v", err)
	}
}
