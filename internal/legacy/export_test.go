package legacy

// Hooks that let the external tests drive the package's own primitives with raw vectors.

// DecryptOAEP exposes the RSAES-OAEP-SHA1 path used by DecryptKey, for the Wycheproof vectors.
var DecryptOAEP = decryptOAEP

// EncryptCBC encrypts buf in place with the SessionCipher's unpadded CBC code.
func (c *SessionCipher) EncryptCBC(iv, buf []byte) { c.encryptCBC(iv, buf) }

// DecryptCBC decrypts src into dst with the SessionCipher's unpadded CBC code.
func (c *SessionCipher) DecryptCBC(dst, iv, src []byte) { c.decryptCBC(dst, iv, src) }
