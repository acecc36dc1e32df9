package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/config"
)

// certReloader serves the certificate of --tls-cert/--tls-key and loads
// it again when either file changes (checked at most once a second, at a
// handshake), so a renewed certificate needs no restart. A pair that does
// not load keeps the previous one in service.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) fileStamp() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

func (r *certReloader) load() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("setting tls-cert/tls-key: %w", err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if r.fileStamp() != r.stamp {
			_ = r.load() // a half-written pair keeps the old certificate
		}
	}
	return r.cert, nil
}

// serverTLS is the TLS configuration of the API/UI and OTLP listeners,
// nil without --tls-cert.
func serverTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	r, err := newCertReloader(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("setting tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("setting tls-client-ca: %s holds no PEM certificate", cfg.TLSClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// withTLS wraps the API listener, and the OTLP listeners off loopback, in
// TLS when configured. OTLP on loopback stays plain: the services of the
// embedded runtime export to it with no certificate to trust.
func (l *listeners) withTLS(tc *tls.Config) {
	if tc == nil {
		return
	}
	l.api = tls.NewListener(l.api, tc)
	for _, ln := range []*net.Listener{&l.otlp, &l.otlpGRPC} {
		if *ln != nil && !isLoopbackAddr((*ln).Addr()) {
			*ln = tls.NewListener(*ln, tc)
		}
	}
}

func isLoopbackAddr(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
