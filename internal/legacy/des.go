package legacy

import (
	"crypto/cipher"
	"crypto/des"
	cryptorand "crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DESKeySize is the size in bytes of a legacy DES session key (56 key bits plus 8 parity bits,
// which are neither set nor checked).
const DESKeySize = 8

const blockSize = des.BlockSize

// Errors returned by [SessionCipher.Open]. Do not reveal which one occurred to a peer: with
// unauthenticated CBC, telling them apart is a padding oracle.
var (
	// ErrCiphertext means the wire bytes have an impossible length: shorter than an IV and one
	// block, or not a whole number of blocks.
	ErrCiphertext = errors.New("legacy: DES-CBC ciphertext has an invalid length")
	// ErrPadding means the decrypted plaintext does not end in valid PKCS#7 padding.
	ErrPadding = errors.New("legacy: DES-CBC plaintext has invalid padding")
)

// SessionCipher encrypts and decrypts the legacy session messages (LOGIN and DATA payloads) and
// the original server's drivers.enc file: DES-CBC with PKCS#7 padding, and the 8-byte IV
// prefixed, so that wire = IV || CBC(pad(plaintext)).
//
// A SessionCipher is safe for concurrent use: it holds only the expanded key.
type SessionCipher struct {
	block cipher.Block
}

// NewSessionCipher returns a SessionCipher for the 8-byte DES key. Parity bits are ignored, like
// pycryptodome does. It returns an error if the key is not [DESKeySize] bytes long.
func NewSessionCipher(key []byte) (*SessionCipher, error) {
	if len(key) != DESKeySize {
		return nil, fmt.Errorf("legacy: DES key is %d bytes, want %d", len(key), DESKeySize)
	}
	block, err := des.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("legacy: DES key: %w", err)
	}
	return &SessionCipher{block: block}, nil
}

// Seal pads plaintext, encrypts it under a fresh IV read from rand, and returns
// IV || ciphertext. A nil rand means crypto/rand.Reader. It fails only if rand does.
func (c *SessionCipher) Seal(rand io.Reader, plaintext []byte) ([]byte, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	pad := blockSize - len(plaintext)%blockSize // 1..8: a full block when aligned
	wire := make([]byte, blockSize+len(plaintext)+pad)
	iv, body := wire[:blockSize], wire[blockSize:]
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, fmt.Errorf("legacy: read IV: %w", err)
	}
	copy(body, plaintext)
	for i := len(plaintext); i < len(body); i++ {
		body[i] = byte(pad)
	}
	c.encryptCBC(iv, body)
	return wire, nil
}

// Open decrypts wire = IV || ciphertext and removes the PKCS#7 padding. It returns
// [ErrCiphertext] if wire is shorter than 16 bytes or not a multiple of 8, and [ErrPadding] if
// the padding is invalid. The plaintext is a new slice; wire is not modified.
func (c *SessionCipher) Open(wire []byte) ([]byte, error) {
	if len(wire) < 2*blockSize || len(wire)%blockSize != 0 {
		return nil, ErrCiphertext
	}
	out := make([]byte, len(wire)-blockSize)
	c.decryptCBC(out, wire[:blockSize], wire[blockSize:])
	n, ok := unpad(out)
	if !ok {
		clear(out)
		return nil, ErrPadding
	}
	return out[:n:n], nil
}

// encryptCBC encrypts buf in place in CBC mode. len(buf) must be a multiple of the block size.
// It is written out instead of using cipher.NewCBCEncrypter to keep Seal to one allocation.
func (c *SessionCipher) encryptCBC(iv, buf []byte) {
	prev := iv
	for i := 0; i < len(buf); i += blockSize {
		b := buf[i : i+blockSize]
		xor8(b, prev)
		c.block.Encrypt(b, b)
		prev = b
	}
}

// decryptCBC decrypts src into dst in CBC mode. dst and src must not overlap, have the same
// length, a multiple of the block size.
func (c *SessionCipher) decryptCBC(dst, iv, src []byte) {
	prev := iv
	for i := 0; i < len(src); i += blockSize {
		s, d := src[i:i+blockSize], dst[i:i+blockSize]
		c.block.Decrypt(d, s)
		xor8(d, prev)
		prev = s
	}
}

// xor8 sets dst[:8] ^= src[:8].
func xor8(dst, src []byte) {
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(dst)^binary.LittleEndian.Uint64(src))
}

// unpad checks the PKCS#7 padding of b (a non-empty multiple of the block size) and returns the
// plaintext length. It reads all eight trailing bytes whatever the pad value, so the time it
// takes does not depend on where the padding goes wrong.
func unpad(b []byte) (int, bool) {
	n := len(b)
	p := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, blockSize)
	for i := 1; i <= blockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, p)
		eq := subtle.ConstantTimeByteEq(b[n-i], byte(p))
		good &= (inPad ^ 1) | eq
	}
	return n - p, good == 1
}
