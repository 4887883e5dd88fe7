// Package ca is the officer server's own small certificate authority for the
// TLS suite. Its Ed25519 root key lives in the data directory (mode 0600),
// like kubeadm's cluster CA; it certifies the server's TLS key, the keys of
// enrolled devices (generated on the devices, sent as CSRs) and the
// officer's signing key (audit checkpoints, evidence export seals).
//
// Clients pin the CA by its hash, the SHA-256 of the root certificate's
// SubjectPublicKeyInfo written "sha256:<hex>" as kubeadm writes it, which a
// join token carries.
//
// Files in the data directory, each holding a private key followed by its
// certificate (and for the server the CA certificate), written atomically
// so that two officer processes starting at once agree on one CA:
//
//	tls-ca.pem       the root key and self-signed certificate
//	tls-server.pem   the TLS server key, certificate and CA certificate
//	signing.pem      the officer signing key and its certificate
package ca

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tes-traffic/tes/internal/identity"
)

// File names in the data directory.
const (
	CAFile     = "tls-ca.pem"
	ServerFile = "tls-server.pem"
	SignerFile = "signing.pem"
)

// ServerName is the DNS name in the server certificate and the name clients
// verify. Trust comes from the pinned CA, not from DNS, so one fixed name
// serves every address an officer is reached at; .invalid never resolves.
const ServerName = "tes-officer.invalid"

// Validity periods.
const (
	CAValidity     = 20 * 365 * 24 * time.Hour
	ServerValidity = 365 * 24 * time.Hour
	DeviceValidity = 2 * 365 * 24 * time.Hour
	SignerValidity = 20 * 365 * 24 * time.Hour
	// RenewBefore: the server certificate is reissued at start when it
	// expires sooner than this.
	RenewBefore = 30 * 24 * time.Hour
	clockSkew   = 5 * time.Minute
)

// OIDDocumentSigning is id-kp-documentSigning (RFC 9336): the officer
// signing certificate's only extended key usage, so that it cannot serve as
// a TLS certificate.
var OIDDocumentSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 36}

// CA is a loaded root: its certificate and Ed25519 key.
type CA struct {
	Cert *x509.Certificate
	key  ed25519.PrivateKey

	Rand io.Reader        // nil: crypto/rand
	Now  func() time.Time // nil: time.Now
}

func (c *CA) rand() io.Reader {
	if c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

func (c *CA) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// New generates a CA in memory. rand nil means crypto/rand.
func New(rnd io.Reader, now time.Time) (*CA, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	pub, key, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          mustSerial(rnd),
		Subject:               pkix.Name{Organization: []string{"TES"}, CommonName: "TES officer CA " + hex.EncodeToString(sum[:4])},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key, Rand: rnd}, nil
}

// LoadOrCreate loads the CA from dir or, when there is none, creates it. If
// another process created it at the same moment, its CA is loaded.
func LoadOrCreate(dir string) (c *CA, created bool, err error) {
	c, err = Load(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, false, err
	}
	c, err = New(nil, time.Now())
	if err != nil {
		return nil, false, err
	}
	err = identity.WriteSecret(filepath.Join(dir, CAFile), encodeKeyAndCerts(c.key, c.Cert.Raw))
	if errors.Is(err, fs.ErrExist) {
		c, err = Load(dir)
		return c, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("ca: write %s: %w", CAFile, err)
	}
	return c, true, nil
}

// Load loads the CA from dir. A missing file gives an error wrapping
// fs.ErrNotExist; a file readable by others is refused.
func Load(dir string) (*CA, error) {
	key, certs, err := loadKeyAndCerts(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 || !certs[0].IsCA {
		return nil, fmt.Errorf("ca: %s must hold one CA certificate", CAFile)
	}
	if err := certs[0].CheckSignatureFrom(certs[0]); err != nil {
		return nil, fmt.Errorf("ca: %s: root certificate is not self-signed: %w", CAFile, err)
	}
	if !keyMatches(certs[0], key) {
		return nil, fmt.Errorf("ca: %s: the key does not match the certificate", CAFile)
	}
	return &CA{Cert: certs[0], key: key}, nil
}

// LoadCert reads only the CA certificate from dir.
func LoadCert(dir string) (*x509.Certificate, error) {
	c, err := Load(dir)
	if err != nil {
		return nil, err
	}
	return c.Cert, nil
}

// Hash is the CA hash clients pin: "sha256:" and the hex SHA-256 of the
// certificate's SubjectPublicKeyInfo.
func Hash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Hash returns the CA hash of c.
func (c *CA) Hash() string { return Hash(c.Cert) }

// Pool returns a pool holding only the CA certificate.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// Fingerprint returns "SHA256:" and the unpadded base64 of the SHA-256 of a
// SubjectPublicKeyInfo DER, the form every TES key fingerprint takes.
func Fingerprint(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func mustSerial(rnd io.Reader) *big.Int {
	n, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // the reader failed; nothing sensible remains
	}
	return n.Add(n, big.NewInt(1))
}

func (c *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	now := c.now()
	tmpl.SerialNumber = mustSerial(c.rand())
	tmpl.NotBefore = now.Add(-clockSkew)
	if tmpl.NotAfter.After(c.Cert.NotAfter) {
		tmpl.NotAfter = c.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(c.rand(), tmpl, c.Cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("ca: issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// IssueServer certifies pub for the TLS server name ServerName.
func (c *CA) IssueServer(pub ed25519.PublicKey) (*x509.Certificate, error) {
	return c.issue(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"TES"}, CommonName: "TES officer"},
		DNSNames:    []string{ServerName},
		NotAfter:    c.now().Add(ServerValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, pub)
}

// IssueSigner certifies pub as the officer's document signing key.
func (c *CA) IssueSigner(pub ed25519.PublicKey) (*x509.Certificate, error) {
	return c.issue(&x509.Certificate{
		Subject:            pkix.Name{Organization: []string{"TES"}, CommonName: "TES officer signing key"},
		NotAfter:           c.now().Add(SignerValidity),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{OIDDocumentSigning},
	}, pub)
}

// IssueDevice checks csr (its self-signature and an Ed25519 key) and
// certifies the key for deviceID and user: the common name is the device
// ID and two URIs name both, tes:device:ID and tes:user:NAME. Nothing
// else from the CSR is copied.
func (c *CA) IssueDevice(csr *x509.CertificateRequest, deviceID, user string) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("ca: CSR signature: %w", err)
	}
	pub, ok := csr.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("ca: CSR key is %T, want Ed25519", csr.PublicKey)
	}
	return c.issue(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"TES"}, CommonName: deviceID},
		URIs:        []*url.URL{{Scheme: "tes", Opaque: "device:" + deviceID}, {Scheme: "tes", Opaque: "user:" + user}},
		NotAfter:    c.now().Add(DeviceValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
}

// DeviceIdentity returns the device ID and user a device certificate was
// issued for. It checks the form only; VerifyDevice checks the chain.
func DeviceIdentity(cert *x509.Certificate) (deviceID, user string, err error) {
	for _, u := range cert.URIs {
		if u.Scheme != "tes" {
			continue
		}
		switch k, v, _ := strings.Cut(u.Opaque, ":"); k {
		case "device":
			deviceID = v
		case "user":
			user = v
		}
	}
	if deviceID == "" || user == "" || cert.Subject.CommonName != deviceID {
		return "", "", errors.New("ca: not a TES device certificate (no tes:device and tes:user names)")
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return "", "", errors.New("ca: device certificate key is not Ed25519")
	}
	return deviceID, user, nil
}

// VerifyDevice checks that cert chains to root as a TLS client certificate
// valid at time at, and returns the device ID and user it names.
func VerifyDevice(cert, root *x509.Certificate, at time.Time) (deviceID, user string, err error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", "", fmt.Errorf("ca: device certificate: %w", err)
	}
	return DeviceIdentity(cert)
}

// VerifySigner checks that cert is an officer signing certificate issued by
// root and valid at time at.
func VerifySigner(cert, root *x509.Certificate, at time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("ca: signing certificate: %w", err)
	}
	ok := false
	for _, oid := range cert.UnknownExtKeyUsage {
		ok = ok || oid.Equal(OIDDocumentSigning)
	}
	if !ok || len(cert.ExtKeyUsage) != 0 {
		return errors.New("ca: not an officer signing certificate (extended key usage is not documentSigning only)")
	}
	if _, isEd := cert.PublicKey.(ed25519.PublicKey); !isEd {
		return errors.New("ca: signing certificate key is not Ed25519")
	}
	return nil
}

// encodeKeyAndCerts writes a PKCS#8 key block followed by certificate blocks.
func encodeKeyAndCerts(key ed25519.PrivateKey, certs ...[]byte) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return out
}

// loadKeyAndCerts reads a file written by encodeKeyAndCerts, strictly: one
// Ed25519 PKCS#8 key, then one or more certificates, nothing else.
func loadKeyAndCerts(path string) (ed25519.PrivateKey, []*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if err := identity.CheckPrivate(path); err != nil {
		return nil, nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("ca: %s does not start with a PKCS#8 private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("ca: %s: key is %T, want Ed25519", path, k)
	}
	var certs []*x509.Certificate
	for {
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("ca: %s: unexpected %q block", path, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(certs) == 0 {
		return nil, nil, fmt.Errorf("ca: %s: want a key followed by certificates and nothing else", path)
	}
	return key, certs, nil
}
