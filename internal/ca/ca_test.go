package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes/internal/ca"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	// Two officer processes starting at once agree on one CA.
	var wg sync.WaitGroup
	cas := make([]*ca.CA, 4)
	created := make([]bool, 4)
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if cas[i], created[i], err = ca.LoadOrCreate(dir); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for i, c := range cas {
		if created[i] {
			n++
		}
		if c.Hash() != cas[0].Hash() {
			t.Fatalf("process %d has CA %s, process 0 %s", i, c.Hash(), cas[0].Hash())
		}
	}
	if n != 1 {
		t.Fatalf("%d processes created the CA, want 1", n)
	}
	st, err := os.Stat(filepath.Join(dir, ca.CAFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("CA file: %v %v", err, st)
	}
	if h := cas[0].Hash(); !strings.HasPrefix(h, "sha256:") || len(h) != 7+64 {
		t.Errorf("hash %q", h)
	}
	os.Chmod(filepath.Join(dir, ca.CAFile), 0o644)
	if _, err := ca.Load(dir); err == nil {
		t.Error("a CA key readable by others was loaded")
	}
}

func TestServerCertificateRenewal(t *testing.T) {
	dir := t.TempDir()
	c, _, err := ca.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, change, err := c.LoadOrIssueServer(dir)
	if err != nil || change != ca.KeyCreated {
		t.Fatalf("first: %v %v", change, err)
	}
	again, change, err := c.LoadOrIssueServer(dir)
	if err != nil || change != ca.KeyLoaded || !again.Leaf.Equal(first.Leaf) {
		t.Fatalf("second start: %v %v", change, err)
	}
	if err := again.Leaf.VerifyHostname(ca.ServerName); err != nil {
		t.Error(err)
	}
	c.Now = func() time.Time { return time.Now().Add(ca.ServerValidity - ca.RenewBefore + time.Hour) }
	renewed, change, err := c.LoadOrIssueServer(dir)
	if err != nil || change != ca.KeyRotated || renewed.Leaf.Equal(first.Leaf) {
		t.Fatalf("near expiry: %v %v", change, err)
	}
}

func TestIssueDevice(t *testing.T) {
	c, err := ca.New(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored", Organization: []string{"ignored"}}}, key)
	csr, _ := x509.ParseCertificateRequest(der)
	cert, err := c.IssueDevice(csr, "0123456789abcdef", "police1")
	if err != nil {
		t.Fatal(err)
	}
	id, user, err := ca.VerifyDevice(cert, c.Cert, time.Now())
	if err != nil || id != "0123456789abcdef" || user != "police1" {
		t.Fatalf("VerifyDevice = %q %q %v", id, user, err)
	}
	if err := ca.VerifySigner(cert, c.Cert, time.Now()); err == nil {
		t.Error("a device certificate passed as a signing certificate")
	}
	if _, _, err := ca.VerifyDevice(cert, c.Cert, cert.NotAfter.Add(time.Second)); err == nil {
		t.Error("an expired device certificate verified")
	}
	// Only Ed25519 device keys.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ek)
	csr, _ = x509.ParseCertificateRequest(der)
	if _, err := c.IssueDevice(csr, "0123456789abcdef", "police1"); err == nil {
		t.Error("an ECDSA CSR was certified")
	}
	signer, err := c.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.VerifySigner(signer.Cert, c.Cert, time.Now()); err != nil {
		t.Errorf("VerifySigner: %v", err)
	}
	if _, _, err := ca.VerifyDevice(signer.Cert, c.Cert, time.Now()); err == nil {
		t.Error("the signing certificate passed as a device certificate")
	}
}
