package legacy

import (
	"bytes"
	"crypto"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
)

const (
	rsaKeyBits      = 2048
	rsaExponent     = 65537
	minModulusBits  = 2048
	maxModulusBits  = 4096
	maxPublicKeyPEM = 16 << 10 // a 4096-bit SPKI PEM is about 800 bytes
	pemLineLength   = 64
	pemBegin        = "-----BEGIN PUBLIC KEY-----\n"
	pemEnd          = "\n-----END PUBLIC KEY-----"
)

// errKeyTransport is the single error DecryptKey returns for every failure, so that a peer
// learns nothing about why (Manger's attack needs to tell OAEP failures apart).
var errKeyTransport = fmt.Errorf("legacy: decrypt session key: %w", rsa.ErrDecryption)

// GenerateRSAKey makes an RSA-2048 key with e = 65537, like pycryptodome's RSA.generate(2048).
// A nil rand means crypto/rand.Reader. Since Go 1.26, crypto/rsa ignores rand and always uses a
// secure source (unless GODEBUG=cryptocustomrand=1), so keys cannot be made deterministic here;
// tests that need that use testing/cryptotest.SetGlobalRandom.
func GenerateRSAKey(rand io.Reader) (*rsa.PrivateKey, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	priv, err := rsa.GenerateKey(rand, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("legacy: generate RSA key: %w", err)
	}
	return priv, nil
}

// MarshalPublicKeyPEM encodes pub as SubjectPublicKeyInfo PEM exactly as pycryptodome's
// export_key() does: "-----BEGIN PUBLIC KEY-----\n", the base64 of the DER in 64-column lines
// joined by "\n", then "\n-----END PUBLIC KEY-----" with no trailing newline. This is the text the
// HANDSHAKE and SESSION messages carry.
//
// It panics if pub cannot be encoded (a nil key or modulus), which is a programming error.
func MarshalPublicKeyPEM(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic("legacy: MarshalPublicKeyPEM: " + err.Error())
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	var sb strings.Builder
	sb.Grow(len(pemBegin) + len(b64) + len(b64)/pemLineLength + len(pemEnd))
	sb.WriteString(pemBegin)
	for len(b64) > pemLineLength {
		sb.WriteString(b64[:pemLineLength])
		sb.WriteByte('\n')
		b64 = b64[pemLineLength:]
	}
	sb.WriteString(b64)
	sb.WriteString(pemEnd)
	return sb.String()
}

// ParsePublicKeyPEM strictly parses a peer's RSA public key in SubjectPublicKeyInfo PEM
// ("-----BEGIN PUBLIC KEY-----"): exactly one PEM block without headers, only whitespace around
// it, canonical DER, an RSA key with an odd modulus of 2048 to 4096 bits and exponent 65537. It
// returns the key and its SPKI DER (for [Fingerprint]). Errors describe what is wrong with the
// input; none of it is secret.
func ParsePublicKeyPEM(pemText string) (*rsa.PublicKey, []byte, error) {
	if len(pemText) > maxPublicKeyPEM {
		return nil, nil, fmt.Errorf("legacy: public key PEM is %d bytes, limit %d", len(pemText), maxPublicKeyPEM)
	}
	text := strings.TrimSpace(pemText)
	if text == "" {
		return nil, nil, errors.New("legacy: public key PEM is empty")
	}
	// pem.Decode skips text before a block and blocks it cannot parse; refuse both outright so
	// that exactly one interpretation of the input exists.
	if strings.Count(text, "-----BEGIN") != 1 || strings.Count(text, "-----END") != 1 {
		return nil, nil, errors.New("legacy: public key PEM must hold exactly one PEM block")
	}
	if !strings.HasPrefix(text, "-----BEGIN ") {
		return nil, nil, errors.New("legacy: public key PEM has text before the PEM block")
	}
	block, rest := pem.Decode([]byte(text))
	switch {
	case block == nil:
		return nil, nil, errors.New("legacy: public key PEM is malformed")
	case len(rest) != 0:
		return nil, nil, errors.New("legacy: public key PEM has text after the PEM block")
	case block.Type == "RSA PUBLIC KEY":
		return nil, nil, errors.New(`legacy: public key is a PKCS#1 "RSA PUBLIC KEY" block, want SubjectPublicKeyInfo "PUBLIC KEY"`)
	case block.Type != "PUBLIC KEY":
		return nil, nil, errors.New(`legacy: PEM block is not a "PUBLIC KEY"`)
	case len(block.Headers) != 0:
		return nil, nil, errors.New("legacy: public key PEM block has headers")
	}
	der := block.Bytes
	key, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, nil, fmt.Errorf("legacy: parse public key: %w", err)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("legacy: public key is %T, want RSA", key)
	}
	if bits := pub.N.BitLen(); bits < minModulusBits || bits > maxModulusBits {
		return nil, nil, fmt.Errorf("legacy: RSA modulus is %d bits, want %d to %d", bits, minModulusBits, maxModulusBits)
	}
	if pub.E != rsaExponent {
		return nil, nil, fmt.Errorf("legacy: RSA public exponent is %d, want %d", pub.E, rsaExponent)
	}
	if pub.N.Bit(0) == 0 { // no RSA modulus is; crypto/rsa refuses it at every verification
		return nil, nil, errors.New("legacy: RSA modulus is even")
	}
	// One key, one encoding: the fingerprint of the DER then identifies the key.
	if canon, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(canon, der) {
		return nil, nil, errors.New("legacy: public key DER is not in canonical form")
	}
	return pub, der, nil
}

// Fingerprint returns "SHA256:" followed by the unpadded standard base64 of SHA-256(spkiDER),
// the format OpenSSH uses for its fingerprints. It is computed over the SubjectPublicKeyInfo DER,
// not the SSH key encoding, so it does not equal ssh-keygen's fingerprint of the same key.
func Fingerprint(spkiDER []byte) string {
	sum := sha256.Sum256(spkiDER)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// EncryptKey encrypts a DES session key to pub with RSAES-OAEP, SHA-1, MGF1-SHA-1 and an empty
// label, as the legacy client does for SESSION. A nil rand means crypto/rand.Reader. It returns
// an error if desKey is not [DESKeySize] bytes long or encryption fails.
func EncryptKey(rand io.Reader, pub *rsa.PublicKey, desKey []byte) ([]byte, error) {
	if len(desKey) != DESKeySize {
		return nil, fmt.Errorf("legacy: DES key is %d bytes, want %d", len(desKey), DESKeySize)
	}
	if pub == nil {
		return nil, errors.New("legacy: encrypt session key: nil public key")
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	ct, err := rsa.EncryptOAEP(sha1.New(), rand, pub, desKey, nil)
	if err != nil {
		return nil, fmt.Errorf("legacy: encrypt session key: %w", err)
	}
	return ct, nil
}

// DecryptKey decrypts the SESSION message's encrypted_key with RSAES-OAEP (SHA-1, MGF1-SHA-1,
// empty label) and returns the 8-byte DES key. Every failure, including a plaintext that is not
// exactly 8 bytes, returns the same error, which wraps [rsa.ErrDecryption].
func DecryptKey(priv *rsa.PrivateKey, ct []byte) ([]byte, error) {
	key, err := decryptOAEP(priv, ct, nil)
	if err != nil {
		return nil, errKeyTransport
	}
	if len(key) != DESKeySize {
		clear(key)
		return nil, errKeyTransport
	}
	return key, nil
}

// decryptOAEP is the package's whole RSAES-OAEP-SHA1 decryption path, separate from DecryptKey
// so that the Wycheproof vectors (other lengths, non-empty labels) exercise it. Like
// pycryptodome, it requires the ciphertext to be exactly as long as the modulus.
func decryptOAEP(priv *rsa.PrivateKey, ct, label []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("legacy: decrypt: nil private key")
	}
	if len(ct) != priv.Size() {
		return nil, rsa.ErrDecryption
	}
	return rsa.DecryptOAEP(sha1.New(), nil, priv, ct, label)
}

// Sign signs msg (the IV || ciphertext wire bytes of a DATA message) with RSASSA-PKCS1-v1_5 over
// SHA-256, as the legacy client does. The signature is deterministic.
func Sign(priv *rsa.PrivateKey, msg []byte) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("legacy: sign: nil private key")
	}
	digest := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("legacy: sign: %w", err)
	}
	return sig, nil
}

// Verify checks an RSASSA-PKCS1-v1_5 SHA-256 signature over msg (the raw IV || ciphertext bytes,
// not their hex and not the plaintext). It returns nil if the signature is valid and otherwise an
// error wrapping [rsa.ErrVerification] (or describing an unusable key).
func Verify(pub *rsa.PublicKey, msg, sig []byte) error {
	if pub == nil {
		return errors.New("legacy: verify: nil public key")
	}
	digest := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("legacy: verify signature: %w", err)
	}
	return nil
}
