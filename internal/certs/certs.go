// Package certs builds the TLS configuration of Pave's listeners from a
// certificate and key on disk, reloading them when they change, so a
// renewed certificate needs no restart. `pave up` and pave-telemetry
// share it.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// Server is the TLS configuration of a listener serving certFile/keyFile
// (HTTP/2 and HTTP/1.1), asking clients for a certificate signed by
// clientCAFile when that is set. setting names the settings in errors
// (for example "setting tls-cert/tls-key" or "--tls-cert/--tls-key").
func Server(certFile, keyFile, clientCAFile, setting, clientCASetting string) (*tls.Config, error) {
	r, err := newReloader(certFile, keyFile, setting)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", clientCASetting, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", clientCASetting, clientCAFile)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// reloader serves the certificate of certFile/keyFile and loads it again
// when either file changes (checked at most once a second, at a
// handshake). A pair that does not load keeps the previous one in service.
type reloader struct {
	certFile, keyFile, setting string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newReloader(certFile, keyFile, setting string) (*reloader, error) {
	r := &reloader{certFile: certFile, keyFile: keyFile, setting: setting}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *reloader) fileStamp() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return s
}

func (r *reloader) load() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("%s: %w", r.setting, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
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
