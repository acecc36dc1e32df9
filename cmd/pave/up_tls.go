package main

import (
	"crypto/tls"
	"net"

	"github.com/pave-platform/pave/internal/certs"
	"github.com/pave-platform/pave/internal/config"
)

// serverTLS is the TLS configuration of the API/UI and OTLP listeners,
// nil without --tls-cert.
func serverTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	return certs.Server(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA, "setting tls-cert/tls-key", "setting tls-client-ca")
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
