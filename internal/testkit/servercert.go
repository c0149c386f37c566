package testkit

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// ServerCertFiles writes a fresh server certificate for the loopback
// addresses and its key as PEM files into dir, for a server under test that
// reads them from its configuration; clients trust the returned pool.
func ServerCertFiles(t testing.TB, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	p, err := newPKI(false)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := os.WriteFile(certFile, p.serverCertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.serverKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, p.pool
}
