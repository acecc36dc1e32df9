package apiclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// CAFile, when set (--ca-file / PAVE_CA_FILE), is the PEM file of the
// certificate authority the control plane's certificate must chain to,
// instead of the system's roots. Verification is never skipped.
var CAFile = os.Getenv("PAVE_CA_FILE")

// ClientCertFile and ClientKeyFile, when set (--client-certificate and
// --client-key, or PAVE_CLIENT_CERT and PAVE_CLIENT_KEY), are the PEM
// certificate and key the CLI presents to a control plane started with
// --tls-client-ca, as kubectl presents its client certificate.
var (
	ClientCertFile = os.Getenv("PAVE_CLIENT_CERT")
	ClientKeyFile  = os.Getenv("PAVE_CLIENT_KEY")
)

// newHTTPClient is the client of New: the system roots, or CAFile, with
// the client certificate when one is given.
func newHTTPClient() (*http.Client, error) {
	if CAFile == "" && ClientCertFile == "" && ClientKeyFile == "" {
		return &http.Client{}, nil
	}
	c, err := HTTPClientWithCA(CAFile)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// HTTPClientWithCA is a client that trusts only the CA certificates in
// file (PEM) for the control plane's certificate (the system's roots when
// file is empty), presenting the client certificate when one is set.
func HTTPClientWithCA(file string) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file: %s: no PEM certificate in it", file)
		}
		cfg.RootCAs = pool
	}
	if ClientCertFile != "" || ClientKeyFile != "" {
		if ClientCertFile == "" || ClientKeyFile == "" {
			return nil, fmt.Errorf("--client-certificate and --client-key go together (one of them is empty)")
		}
		pair, err := tls.LoadX509KeyPair(ClientCertFile, ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--client-certificate %s / --client-key %s: %w", ClientCertFile, ClientKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, nil
}
