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

// newHTTPClient is the client of New: the system roots, or CAFile.
func newHTTPClient() (*http.Client, error) {
	if CAFile == "" {
		return &http.Client{}, nil
	}
	c, err := HTTPClientWithCA(CAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	return c, nil
}

// HTTPClientWithCA is a client that trusts only the CA certificates in
// file (PEM) for the control plane's certificate.
func HTTPClientWithCA(file string) (*http.Client, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}
