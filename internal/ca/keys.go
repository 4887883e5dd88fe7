package ca

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/tes-traffic/tes/internal/identity"
)

// KeyChange says what LoadOrIssueServer and LoadOrIssueSigner did, for the
// audit log.
type KeyChange int

// The outcomes of loading a key.
const (
	KeyLoaded  KeyChange = iota // the key on disk was used as is
	KeyCreated                  // there was none; a new key was created
	KeyRotated                  // the old one was expiring or not from this CA; replaced
)

// LoadOrIssueServer loads the TLS server key and certificate from dir, or
// creates them, or replaces them with a new key when the certificate
// expires within RenewBefore or was not issued by c. The returned
// certificate carries the chain leaf, CA.
func (c *CA) LoadOrIssueServer(dir string) (tls.Certificate, KeyChange, error) {
	path := filepath.Join(dir, ServerFile)
	key, certs, err := loadKeyAndCerts(path)
	change := KeyCreated
	if err == nil {
		leaf := certs[0]
		if leaf.CheckSignatureFrom(c.Cert) == nil && c.now().Add(RenewBefore).Before(leaf.NotAfter) && keyMatches(leaf, key) {
			return tlsCert(key, leaf, c.Cert), KeyLoaded, nil
		}
		change = KeyRotated
	} else if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, 0, err
	}
	pub, key, err := ed25519.GenerateKey(c.rand())
	if err != nil {
		return tls.Certificate{}, 0, err
	}
	leaf, err := c.IssueServer(pub)
	if err != nil {
		return tls.Certificate{}, 0, err
	}
	data := encodeKeyAndCerts(key, leaf.Raw, c.Cert.Raw)
	if change == KeyRotated {
		err = identity.ReplaceSecret(path, data)
	} else if err = identity.WriteSecret(path, data); errors.Is(err, fs.ErrExist) {
		return c.LoadOrIssueServer(dir) // another process won
	}
	if err != nil {
		return tls.Certificate{}, 0, fmt.Errorf("ca: write %s: %w", ServerFile, err)
	}
	return tlsCert(key, leaf, c.Cert), change, nil
}

func tlsCert(key ed25519.PrivateKey, leaf, root *x509.Certificate) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{leaf.Raw, root.Raw}, PrivateKey: key, Leaf: leaf}
}

// Signer is the officer's document signing key: it signs audit checkpoints
// and evidence export seals. Its certificate, issued by the CA, lets a third
// party who trusts the CA hash trust the seals.
type Signer struct {
	Key  ed25519.PrivateKey
	Cert *x509.Certificate
}

// Sign signs msg. Callers prefix msg with their own domain tag.
func (s *Signer) Sign(msg []byte) []byte { return ed25519.Sign(s.Key, msg) }

// Fingerprint is the fingerprint of the signing key's SubjectPublicKeyInfo.
func (s *Signer) Fingerprint() string { return Fingerprint(s.Cert.RawSubjectPublicKeyInfo) }

// LoadOrIssueSigner loads the officer signing key from dir or creates it
// and has c certify it.
func (c *CA) LoadOrIssueSigner(dir string) (*Signer, KeyChange, error) {
	s, err := LoadSigner(dir)
	if err == nil {
		if err := s.Cert.CheckSignatureFrom(c.Cert); err != nil {
			return nil, 0, fmt.Errorf("ca: %s was not issued by this CA: %w", SignerFile, err)
		}
		return s, KeyLoaded, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	pub, key, err := ed25519.GenerateKey(c.rand())
	if err != nil {
		return nil, 0, err
	}
	cert, err := c.IssueSigner(pub)
	if err != nil {
		return nil, 0, err
	}
	err = identity.WriteSecret(filepath.Join(dir, SignerFile), encodeKeyAndCerts(key, cert.Raw, c.Cert.Raw))
	if errors.Is(err, fs.ErrExist) {
		return c.LoadOrIssueSigner(dir)
	} else if err != nil {
		return nil, 0, fmt.Errorf("ca: write %s: %w", SignerFile, err)
	}
	return &Signer{Key: key, Cert: cert}, KeyCreated, nil
}

// LoadSigner loads the officer signing key from dir (an error wrapping
// fs.ErrNotExist when there is none).
func LoadSigner(dir string) (*Signer, error) {
	key, certs, err := loadKeyAndCerts(filepath.Join(dir, SignerFile))
	if err != nil {
		return nil, err
	}
	if !keyMatches(certs[0], key) {
		return nil, fmt.Errorf("ca: %s: the key does not match the certificate", SignerFile)
	}
	return &Signer{Key: key, Cert: certs[0]}, nil
}

// NewSigner creates and certifies a signing key in memory (tests, tools).
func (c *CA) NewSigner() (*Signer, error) {
	pub, key, err := ed25519.GenerateKey(c.rand())
	if err != nil {
		return nil, err
	}
	cert, err := c.IssueSigner(pub)
	if err != nil {
		return nil, err
	}
	return &Signer{Key: key, Cert: cert}, nil
}

// keyMatches reports whether cert certifies key's public half.
func keyMatches(cert *x509.Certificate, key ed25519.PrivateKey) bool {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	return ok && bytes.Equal(pub, key.Public().(ed25519.PublicKey))
}
