package state

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// explainTLS adds what to change to an error verifying PostgreSQL's
// certificate: pgx says only that verification failed, not which part
// of the state-store URL decides it.
func explainTLS(err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (the server's certificate is not signed by the CA in sslrootcert: point sslrootcert at the CA that signed it, or at the system's CAs with sslrootcert=system)", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w (sslmode=verify-full checks the URL's host against the certificate: connect by a name the certificate lists, or use sslmode=verify-ca)", err)
	case errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("%w (the server's certificate was refused under the URL's sslmode and sslrootcert)", err)
	}
	return err
}
