// Package legacy exists ONLY for wire compatibility with the original Python TES clients (and
// their server), which use pycryptodome. It must not be used for anything new: DES has a 56-bit
// key and is broken by brute force, and SHA-1 OAEP and PKCS#1 v1.5 signatures are legacy
// constructions kept here only because those clients speak them.
//
// What it speaks, byte for byte (see shared/spec/tes1-wire.md and testdata/legacy):
//
//   - RSA-2048 identities, e = 65537, exchanged as SubjectPublicKeyInfo PEM.
//   - Session-key transport with RSAES-OAEP using SHA-1 and MGF1-SHA-1 and an empty label
//     (pycryptodome's PKCS1_OAEP defaults).
//   - Session encryption with single DES in CBC mode, PKCS#7 padding and the IV prefixed to the
//     ciphertext. Anyone who records a session can brute-force the key and read it; nor does
//     the mode protect integrity.
//   - Report signatures with RSASSA-PKCS1-v1_5 over SHA-256 of the encrypted wire bytes.
//
// These algorithms are fenced in this package so that nothing else in TES picks them up by
// accident. New protocols, storage encryption and anything else must use modern primitives
// (AEADs, X25519, Ed25519) instead.
//
// Because DES-CBC here is unauthenticated, callers must not let a peer tell a padding failure
// from any other failure ([ErrPadding] and [ErrCiphertext] are for logs and tests), and must
// verify a message's signature, where the protocol has one, before decrypting it.
package legacy
