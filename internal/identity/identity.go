// Package identity keeps the officer server's long-term keys in its data
// directory: created once with mode 0600, loaded on every start, so that
// clients can pin them (the original generated a new RSA key at every start,
// which made pinning impossible).
package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tes-traffic/tes/internal/legacy"
)

// TES1KeyFile is the TES/1 RSA identity's file name in the data directory.
const TES1KeyFile = "tes1-server-key.pem"

// LoadOrCreateRSA loads the RSA private key at path (PKCS#8 PEM) or, if the
// file does not exist, generates an RSA-2048 key and writes it with mode
// 0600. It refuses a key file readable by group or others.
func LoadOrCreateRSA(path string) (key *rsa.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = legacy.GenerateRSAKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, err
		}
		if err := WriteSecret(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, false, err
		}
		return key, true, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("read server key: %w", err)
	}
	if err := CheckPrivate(path); err != nil {
		return nil, false, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("server key %s is not a PKCS#8 PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("server key %s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() < 2048 {
		return nil, false, fmt.Errorf("server key %s must be RSA of at least 2048 bits", path)
	}
	rk.Precompute()
	return rk, false, nil
}

// WriteSecret writes data to path with mode 0600, atomically (temp file,
// fsync, link), creating the directory with mode 0700. It never replaces
// an existing file.
func WriteSecret(path string, data []byte) error {
	return writeSecret(path, data, os.Link)
}

// ReplaceSecret is WriteSecret for a file that may exist and is replaced
// atomically (temp file, fsync, rename): used to renew a certificate.
func ReplaceSecret(path string, data []byte) error {
	return writeSecret(path, data, os.Rename)
}

func writeSecret(path string, data []byte, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := place(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CheckPrivate fails if path is readable or writable by group or others.
func CheckPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %v: secrets must be private; run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return nil
}
