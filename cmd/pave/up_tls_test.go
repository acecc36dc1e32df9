package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/config"
)

// writeSelfSigned writes a certificate for 127.0.0.1 named cn and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestTLSServesVerifiesAndReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	first := writeSelfSigned(t, cfg.TLSCert, cfg.TLSKey, "first")
	tc, err := serverTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls := &listeners{api: ln}
	ls.withTLS(tc)
	hs := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	go hs.Serve(ls.api)
	t.Cleanup(func() { hs.Close() })
	url := "https://" + ln.Addr().String() + "/"

	trusting := func(c *x509.Certificate) *http.Client {
		pool := x509.NewCertPool()
		pool.AddCert(c)
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	if _, err := http.Get(url); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown certificate must fail verification: %v", err)
	}
	resp, err := trusting(first).Get(url)
	if err != nil || resp.TLS == nil || resp.TLS.PeerCertificates[0].Subject.CommonName != "first" {
		t.Fatalf("with its CA: %v", err)
	}
	resp.Body.Close()

	second := writeSelfSigned(t, cfg.TLSCert, cfg.TLSKey, "second")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := trusting(second)
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := serverTLS(config.Config{TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey, TLSClientCA: filepath.Join(dir, "missing.pem")}); err == nil || !strings.Contains(err.Error(), "tls-client-ca") {
		t.Fatalf("a missing client CA: %v", err)
	}
}
