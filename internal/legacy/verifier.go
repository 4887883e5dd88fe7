package legacy

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"filippo.io/bigmod"
)

// sha256DigestInfo is the DER prefix of a DigestInfo holding a SHA-256 hash (RFC 8017, 9.2 note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// A Verifier checks RSASSA-PKCS1-v1_5 SHA-256 signatures made by one key, as [Verify] does, but
// with the key's Montgomery constants and the signature encoding's fixed part computed once.
// crypto/rsa recomputes the constants on every call; for a 2048-bit key they are about a third
// of a verification, and a TES/1 connection verifies every DATA message with the same key.
//
// The arithmetic is filippo.io/bigmod, the standard library's own crypto/internal/fips140/bigmod
// published as a module; the encoding check is crypto/rsa's, step for step (RFC 8017, 8.2.2).
// A Verifier is safe for concurrent use.
type Verifier struct {
	n      *bigmod.Modulus
	size   int    // k, the modulus length in bytes
	prefix []byte // EM without the hash: 0x00 0x01 0xff.. 0x00 DigestInfo
}

// NewVerifier prepares pub, which must be a key [ParsePublicKeyPEM] accepts: an odd modulus of 2048
// to 4096 bits and exponent 65537.
func NewVerifier(pub *rsa.PublicKey) (*Verifier, error) {
	if pub == nil || pub.N == nil {
		return nil, errors.New("legacy: verifier: nil public key")
	}
	if bits := pub.N.BitLen(); bits < minModulusBits || bits > maxModulusBits {
		return nil, fmt.Errorf("legacy: RSA modulus is %d bits, want %d to %d", bits, minModulusBits, maxModulusBits)
	}
	if pub.E != rsaExponent {
		return nil, fmt.Errorf("legacy: RSA public exponent is %d, want %d", pub.E, rsaExponent)
	}
	if pub.N.Bit(0) == 0 {
		return nil, errors.New("legacy: RSA modulus is even")
	}
	n, err := bigmod.NewModulus(pub.N.Bytes())
	if err != nil {
		return nil, fmt.Errorf("legacy: verifier: %w", err)
	}
	k := n.Size()
	// EM = 0x00 || 0x01 || PS || 0x00 || T, T = DigestInfo || H, PS = 0xff.. (at least 8 bytes,
	// which a 2048-bit modulus always leaves room for).
	prefix := make([]byte, k-sha256.Size)
	prefix[1] = 0x01
	ps := prefix[2 : len(prefix)-len(sha256DigestInfo)-1]
	for i := range ps {
		ps[i] = 0xff
	}
	copy(prefix[len(prefix)-len(sha256DigestInfo):], sha256DigestInfo)
	return &Verifier{n: n, size: k, prefix: prefix}, nil
}

// Verify checks sig over msg exactly as [Verify] does and returns the same errors: nil for a
// valid signature, otherwise an error wrapping [rsa.ErrVerification].
func (v *Verifier) Verify(msg, sig []byte) error {
	// RFC 8017 8.2.2 step 1: a signature of any other length than the modulus is invalid.
	if len(sig) != v.size {
		return errVerification
	}
	// Step 2: s must be below n; then m = s^e mod n, as k bytes.
	s, err := bigmod.NewNat().SetBytes(sig, v.n)
	if err != nil {
		return errVerification
	}
	em := bigmod.NewNat().ExpShortVarTime(s, rsaExponent, v.n).Bytes(v.n)
	// Steps 3 and 4: compare with the one encoding of SHA-256(msg). The inputs are public; the
	// comparison is constant-time only because it costs nothing.
	digest := sha256.Sum256(msg)
	if subtle.ConstantTimeCompare(em[:len(v.prefix)], v.prefix)&subtle.ConstantTimeCompare(em[len(v.prefix):], digest[:]) != 1 {
		return errVerification
	}
	return nil
}

var errVerification = fmt.Errorf("legacy: verify signature: %w", rsa.ErrVerification)
