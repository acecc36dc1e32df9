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
	pem, err := os.ReadFile(CAFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}
