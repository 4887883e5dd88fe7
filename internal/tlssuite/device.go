package tlssuite

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/identity"
)

// Files of an enrolment directory on the device.
const (
	DeviceKeyFile  = "device-key.pem" // the Ed25519 key, PKCS#8, 0600; made on the device, never sent
	DeviceCertFile = "device.pem"     // the device certificate, then the CA certificate
	DeviceFile     = "device.json"    // what the enrolment recorded (deviceRecord)
)

// ErrNotEnrolled is returned (wrapped) by LoadDevice for a directory that
// holds no completed enrolment.
var ErrNotEnrolled = errors.New("tlssuite: no device is enrolled in this directory")

// Device is an enrolled device as its owner holds it: the private key, the
// certificate and the CA it was enrolled with, and where the server's TLS
// suite listens.
type Device struct {
	Dir        string
	ID         string
	User       string
	Addr       string // the server's TLS suite address, host:port
	CAHash     string // "sha256:..."
	EnrolledAt time.Time
	Key        ed25519.PrivateKey
	Cert       *x509.Certificate
	CA         *x509.Certificate
}

// deviceRecord is device.json.
type deviceRecord struct {
	Format     string    `json:"format"`
	DeviceID   string    `json:"device_id"`
	User       string    `json:"user"`
	Server     string    `json:"server"`
	CAHash     string    `json:"ca_hash"`
	EnrolledAt time.Time `json:"enrolled_at"`
}

const deviceFormat = "tes-device/1"

// Host returns the host part of the device's server address, lower-cased:
// the client's downgrade policy keys on it.
func (d *Device) Host() string { return HostOf(d.Addr) }

// HostOf returns the lower-cased host of a host:port address (or of a bare
// host).
func HostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		h = addr
	}
	return strings.ToLower(h)
}

// LoadDevice loads the enrolment in dir. It checks the key file is private,
// that the certificate certifies the key and chains to the recorded CA.
// A directory without an enrolment gives an error wrapping ErrNotEnrolled.
func LoadDevice(dir string) (*Device, error) {
	b, err := os.ReadFile(filepath.Join(dir, DeviceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", ErrNotEnrolled, dir)
	} else if err != nil {
		return nil, err
	}
	var rec deviceRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Format != deviceFormat {
		return nil, fmt.Errorf("tlssuite: %s is not a %s record", filepath.Join(dir, DeviceFile), deviceFormat)
	}
	key, err := loadDeviceKey(dir)
	if err != nil {
		return nil, err
	}
	certs, err := readCerts(filepath.Join(dir, DeviceCertFile))
	if err != nil {
		return nil, err
	}
	if len(certs) != 2 {
		return nil, fmt.Errorf("tlssuite: %s must hold the device and the CA certificate", DeviceCertFile)
	}
	d := &Device{Dir: dir, ID: rec.DeviceID, User: rec.User, Addr: rec.Server, CAHash: rec.CAHash,
		EnrolledAt: rec.EnrolledAt, Key: key, Cert: certs[0], CA: certs[1]}
	if err := d.check(time.Now()); err != nil {
		return nil, fmt.Errorf("tlssuite: enrolment in %s: %w", dir, err)
	}
	return d, nil
}

// check verifies that the parts of d belong together.
func (d *Device) check(at time.Time) error {
	if ca.Hash(d.CA) != d.CAHash {
		return errors.New("the CA certificate does not match the recorded CA hash")
	}
	pub, ok := d.Cert.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, d.Key.Public().(ed25519.PublicKey)) {
		return errors.New("the certificate does not certify the device key")
	}
	id, user, err := ca.VerifyDevice(d.Cert, d.CA, at)
	if err != nil {
		return err
	}
	if id != d.ID || user != d.User {
		return fmt.Errorf("the certificate names device %s and user %s, the record %s and %s", id, user, d.ID, d.User)
	}
	return nil
}

// loadDeviceKey reads dir's private key.
func loadDeviceKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, DeviceKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := identity.CheckPrivate(path); err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("tlssuite: %s is not one PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlssuite: %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("tlssuite: %s: key is %T, want Ed25519", path, k)
	}
	return key, nil
}

// loadOrCreateKey returns dir's key, creating it (0600) when there is none.
// A key left by an enrolment that failed after the key was made is reused.
func loadOrCreateKey(dir string, gen func() (ed25519.PrivateKey, error)) (ed25519.PrivateKey, error) {
	key, err := loadDeviceKey(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if key, err = gen(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := identity.WriteSecret(filepath.Join(dir, DeviceKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("tlssuite: write device key: %w", err)
	}
	return key, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("tlssuite: %s: unexpected %q block", path, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlssuite: %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, fmt.Errorf("tlssuite: %s: text after the certificates", path)
	}
	return out, nil
}

// save writes the certificates and then the record, which completes the
// enrolment. The record is never replaced; certificates left by an
// enrolment that failed before its record was written are.
func (d *Device) save() error {
	os.Remove(filepath.Join(d.Dir, DeviceCertFile))
	certs := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Cert.Raw})
	certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.CA.Raw})...)
	if err := identity.WriteSecret(filepath.Join(d.Dir, DeviceCertFile), certs); err != nil {
		return fmt.Errorf("tlssuite: write %s: %w", DeviceCertFile, err)
	}
	b, err := json.MarshalIndent(deviceRecord{Format: deviceFormat, DeviceID: d.ID, User: d.User, Server: d.Addr,
		CAHash: d.CAHash, EnrolledAt: d.EnrolledAt.UTC()}, "", "  ")
	if err != nil {
		return err
	}
	if err := identity.WriteSecret(filepath.Join(d.Dir, DeviceFile), append(b, '\n')); err != nil {
		return fmt.Errorf("tlssuite: write %s: %w", DeviceFile, err)
	}
	return nil
}
