package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/config"
)

// With --tls-client-ca, a client without a certificate of that CA is
// refused at the handshake, one with it is served; and the OTLP listeners
// get TLS off loopback while on loopback they stay plain (the embedded
// runtime's services export there with no certificate to trust).
func TestTLSClientCertificatesAndOTLPListeners(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	serverCert := writeSelfSigned(t, cfg.TLSCert, cfg.TLSKey, "server")
	clientCertFile, clientKeyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	writeSelfSigned(t, clientCertFile, clientKeyFile, "client")
	strangerCertFile, strangerKeyFile := filepath.Join(dir, "stranger.pem"), filepath.Join(dir, "stranger.key")
	writeSelfSigned(t, strangerCertFile, strangerKeyFile, "stranger")
	cfg.TLSClientCA = clientCertFile
	tc, err := serverTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}

	listen := func(addr string) net.Listener {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	// The OTLP/HTTP listener on every address (not loopback), the gRPC
	// one on loopback.
	ls := &listeners{api: listen("127.0.0.1:0"), otlp: listen("0.0.0.0:0"), otlpGRPC: listen("127.0.0.1:0")}
	ls.withTLS(tc)
	for _, ln := range []net.Listener{ls.api, ls.otlp, ls.otlpGRPC} {
		hs := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		hs.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		go hs.Serve(ln)
		t.Cleanup(func() { hs.Close() })
	}
	port := func(ln net.Listener) string { return ":" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }

	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	client := func(certFile, keyFile string) *http.Client {
		c := &tls.Config{RootCAs: roots}
		if certFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	}
	get := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "ok" {
			return fmt.Errorf("%s: %d %q", url, resp.StatusCode, body)
		}
		return nil
	}
	for name, ln := range map[string]net.Listener{"api": ls.api, "otlp off loopback": ls.otlp} {
		url := "https://127.0.0.1" + port(ln) + "/"
		if err := get(client("", ""), url); err == nil {
			t.Errorf("%s: a client without a certificate was served", name)
		}
		if err := get(client(strangerCertFile, strangerKeyFile), url); err == nil {
			t.Errorf("%s: a client with a certificate of another CA was served", name)
		}
		if err := get(client(clientCertFile, clientKeyFile), url); err != nil {
			t.Errorf("%s: a client with a certificate of --tls-client-ca: %v", name, err)
		}
		if err := get(&http.Client{}, "http://127.0.0.1"+port(ln)+"/"); err == nil || !strings.Contains(err.Error(), "HTTPS server") {
			t.Errorf("%s: plain HTTP: %v, want the TLS server's refusal", name, err)
		}
	}
	if err := get(&http.Client{}, "http://127.0.0.1"+port(ls.otlpGRPC)+"/"); err != nil {
		t.Errorf("OTLP on loopback must stay plain: %v", err)
	}
}
