package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ca is a certificate authority made for one test cluster.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(name string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// server issues a certificate for the loopback server, valid for
// 127.0.0.1 and localhost (what sslmode=verify-full checks).
func (c *ca) server() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// WriteCA writes the certificate of a new CA, one that signed no server,
// into dir and returns its path: the wrong sslrootcert for a test.
func WriteCA(dir string) (string, error) {
	c, err := newCA("pgtest unrelated CA")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "other-ca.pem")
	return path, os.WriteFile(path, c.pem, 0o644)
}

// setUpTLS makes a CA and a server certificate for the cluster, turns
// ssl on and accepts TCP connections over TLS only (pg_hba hostssl), so a
// client that connects at all connected over TLS.
func (s *Server) setUpTLS() error {
	c, err := newCA("pgtest CA")
	if err != nil {
		return fmt.Errorf("pgtest: CA: %w", err)
	}
	crt, key, err := c.server()
	if err != nil {
		return fmt.Errorf("pgtest: server certificate: %w", err)
	}
	s.ca = filepath.Join(s.dir, "ca.pem")
	files := []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{s.ca, c.pem, 0o644},
		{filepath.Join(s.data(), "server.crt"), crt, 0o644},
		// PostgreSQL refuses a key readable by others.
		{filepath.Join(s.data(), "server.key"), key, 0o600},
		{filepath.Join(s.data(), "pg_hba.conf"), []byte("local all all trust\nhostssl all all 127.0.0.1/32 trust\n"), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return err
		}
		if s.cred != nil {
			if err := os.Chown(f.path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// CAFile is the path of the CA that signed a TLS cluster's certificate
// (Options.TLS), for sslrootcert; empty without TLS.
func (s *Server) CAFile() string { return s.ca }
