// Package atrest encrypts the store's sensitive columns at rest.
//
// One 32-byte master key, kept in a file beside the database (or wherever the
// operator points), yields two keys through HKDF-SHA256: an AES-256-GCM key
// that seals plates, locations and driver records, and an HMAC-SHA256 key
// that turns a plate into a deterministic lookup key. A stolen database file
// therefore shows neither plates nor points, while the store can still find
// every row of one plate with an index.
//
// Every sealed value is bound to where it belongs with additional data (the
// column name, or the row's plate key), so a ciphertext copied into another
// column or row fails to open instead of being misread.
package atrest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// KeySize is the length of the master key in bytes.
const KeySize = 32

// Overhead is how many bytes Seal adds to a plaintext: a 12-byte nonce and a
// 16-byte tag.
const Overhead = 12 + 16

// IndexSize is the length of an Index value in bytes.
const IndexSize = sha256.Size

// HKDF info strings. Changing one changes every derived key and makes every
// existing database unreadable, so they are versioned and never edited.
const (
	infoAEAD  = "tes at-rest v1 aes-256-gcm"
	infoIndex = "tes at-rest v1 plate index hmac-sha256"
)

// ErrDecrypt is returned by Open for every failure: a wrong key, wrong
// additional data, a modified or truncated value. The causes are not told
// apart on purpose.
var ErrDecrypt = errors.New("atrest: cannot decrypt: wrong key, wrong context or corrupted data")

// Keys holds the store's at-rest keys, derived with HKDF-SHA256 from one
// 32-byte master key. A Keys is safe for concurrent use.
type Keys struct {
	aead  cipher.AEAD // AES-256-GCM with a random 96-bit nonce per Seal
	index []byte      // HMAC-SHA256 key for Index
	macs  sync.Pool   // of hash.Hash keyed with index; HMAC setup costs two blocks
}

// New derives the keys from a 32-byte master key. Any other length is an
// error.
func New(master []byte) (*Keys, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("atrest: master key is %d bytes, want %d", len(master), KeySize)
	}
	encKey, err := hkdf.Key(sha256.New, master, nil, infoAEAD, 32)
	if err != nil {
		return nil, fmt.Errorf("atrest: derive encryption key: %w", err)
	}
	idxKey, err := hkdf.Key(sha256.New, master, nil, infoIndex, 32)
	if err != nil {
		return nil, fmt.Errorf("atrest: derive index key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("atrest: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("atrest: %w", err)
	}
	clear(encKey)
	k := &Keys{aead: aead, index: idxKey}
	k.macs.New = func() any { return hmac.New(sha256.New, k.index) }
	return k, nil
}

// Seal encrypts and authenticates plaintext with AES-256-GCM under a fresh
// random 12-byte nonce and returns nonce||ciphertext||tag. aad is
// authenticated but not stored: Open must be given the same aad.
//
// Random nonces limit one master key to about 2^32 sealed values, which is
// far above what one TES database holds; rotate the key long before that.
func (k *Keys) Seal(plaintext, aad []byte) []byte {
	return k.aead.Seal(make([]byte, 0, len(plaintext)+Overhead), nil, plaintext, aad)
}

// Open reverses Seal. It returns ErrDecrypt if sealed was not made by Seal
// with these keys and this aad, or was changed in any way.
func (k *Keys) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, nil, sealed, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Index returns HMAC-SHA256(indexKey, plate), 32 bytes: the value the store
// indexes and looks a plate up by. It is deterministic for one master key, so
// equal plates give equal keys, and reveals nothing about the plate to
// someone without the key. Callers normalise the plate first.
func (k *Keys) Index(plate string) []byte {
	return k.AppendIndex(make([]byte, 0, IndexSize), plate)
}

// AppendIndex appends Index(plate) to dst and returns the extended slice, for
// callers that keep many index values in one buffer.
func (k *Keys) AppendIndex(dst []byte, plate string) []byte {
	m := k.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(plate))
	dst = m.Sum(dst)
	k.macs.Put(m)
	return dst
}

// LoadOrCreate reads the master key from path, or creates path with a new
// random key if it does not exist. created reports which happened.
//
// The file holds 64 hexadecimal characters and an optional newline. It is
// created with mode 0600 (and its directory, if missing, with 0700); an
// existing file whose mode gives the group or others any access is refused,
// because anyone who reads it can read every plate in the database.
func LoadOrCreate(path string) (keys *Keys, created bool, err error) {
	k, err := Load(path)
	if err == nil {
		return k, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("atrest: create key directory: %w", err)
	}
	master := make([]byte, KeySize)
	rand.Read(master)
	defer clear(master)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our Load and OpenFile.
		k, err := Load(path)
		return k, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("atrest: create key file: %w", err)
	}
	text := make([]byte, 0, 2*KeySize+1)
	text = hex.AppendEncode(text, master)
	text = append(text, '\n')
	_, werr := f.Write(text)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("atrest: write key file: %w", err)
	}
	syncDir(filepath.Dir(path))
	k, err = New(master)
	if err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// Load reads the master key from path, which must exist, hold exactly 64
// hexadecimal characters and an optional newline, and be readable by its
// owner only. A missing file gives an error that wraps fs.ErrNotExist.
func Load(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("atrest: open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("atrest: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("atrest: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("atrest: key file %s has mode %04o, which lets other users read it: run chmod 600 %s", path, perm, path)
	}
	// Read one byte more than the longest valid file to tell "too long" apart.
	buf := make([]byte, 2*KeySize+2)
	defer clear(buf)
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("atrest: read key file: %w", err)
	}
	text := buf[:n]
	text = bytes.TrimSuffix(text, []byte("\n"))
	if len(text) != 2*KeySize {
		return nil, fmt.Errorf("atrest: key file %s must hold %d hexadecimal characters and an optional newline", path, 2*KeySize)
	}
	master := make([]byte, KeySize)
	defer clear(master)
	if _, err := hex.Decode(master, text); err != nil {
		return nil, fmt.Errorf("atrest: key file %s must hold %d hexadecimal characters and an optional newline", path, 2*KeySize)
	}
	return New(master)
}

// syncDir makes a newly created file's directory entry durable. Failure is
// ignored: some file systems do not support syncing a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
