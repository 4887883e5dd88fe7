package legacy_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// Seed corpora beyond these f.Add calls live in testdata/fuzz/<FuzzName>/.

func FuzzOpen(f *testing.F) {
	v := mustInterop(f)
	for _, tc := range v.DESCBC {
		f.Add(mustHex(f, tc.Key), mustHex(f, tc.Wire))
	}
	for _, tc := range v.DESCBCMustReject {
		f.Add(mustHex(f, tc.Key), mustHex(f, tc.Wire))
	}
	f.Add([]byte("STOREKEY"), mustHex(f, v.StorageDriversEnc.File))
	f.Add([]byte("short"), []byte{})

	f.Fuzz(func(t *testing.T, key, wire []byte) {
		c, err := legacy.NewSessionCipher(key)
		if len(key) != legacy.DESKeySize {
			if err == nil {
				t.Fatalf("NewSessionCipher accepted a %d-byte key", len(key))
			}
			return
		}
		if err != nil {
			t.Fatalf("NewSessionCipher: %v", err)
		}
		pt, err := c.Open(wire)
		if err != nil {
			if !errors.Is(err, legacy.ErrCiphertext) && !errors.Is(err, legacy.ErrPadding) {
				t.Fatalf("Open: unexpected error %v", err)
			}
			if pt != nil {
				t.Fatal("Open returned plaintext with an error")
			}
			return
		}
		if pad := len(wire) - 8 - len(pt); pad < 1 || pad > 8 {
			t.Fatalf("Open removed %d bytes of padding", pad)
		}
		// Re-sealing with the same IV must give back the very same bytes: the encoding has
		// exactly one valid form.
		again, err := c.Seal(bytes.NewReader(wire[:8]), pt)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if !bytes.Equal(again, wire) {
			t.Fatalf("Seal(Open(wire)) = %x, want %x", again, wire)
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	v := mustInterop(f)
	f.Add(v.ServerRSA.PublicPEMSPKI)
	f.Add(v.ClientRSA.PublicPEMSPKI + "\n")
	f.Add(v.ServerRSA.PublicPEMSPKI + "\n" + v.ClientRSA.PublicPEMSPKI)
	f.Add("-----BEGIN RSA PUBLIC KEY-----\nMAoCAwEAAQIDAQAB\n-----END RSA PUBLIC KEY-----\n")
	f.Add("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----")
	f.Add("")

	f.Fuzz(func(t *testing.T, pemText string) {
		pub, der, err := legacy.ParsePublicKeyPEM(pemText)
		if err != nil {
			if pub != nil || der != nil {
				t.Fatal("returned a key along with an error")
			}
			return
		}
		if bits := pub.N.BitLen(); bits < 2048 || bits > 4096 || pub.E != 65537 || pub.N.Bit(0) == 0 {
			t.Fatalf("accepted a %d-bit key with e=%d (odd: %v)", bits, pub.E, pub.N.Bit(0) == 1)
		}
		// Whatever was accepted re-encodes to the same DER and parses again.
		pub2, der2, err := legacy.ParsePublicKeyPEM(legacy.MarshalPublicKeyPEM(pub))
		if err != nil || !pub2.Equal(pub) || !bytes.Equal(der2, der) {
			t.Fatalf("re-encoded key does not round-trip: %v", err)
		}
	})
}

// FuzzVerifier checks the Verifier against crypto/rsa (through Verify) on signatures whose
// decoded message the fuzzer chooses: each input em is signed with the raw private-key
// operation, so both sides see s with s^e = em and differ only if their encoding checks do.
// The seeds are the one valid encoding of the message and near misses of it.
func FuzzVerifier(f *testing.F) {
	priv := mustPKCS1Key(f, mustInterop(f).ClientRSA)
	k := priv.Size()
	msg := []byte("IV||ciphertext bytes of a DATA message")
	digest := sha256.Sum256(msg)
	valid := make([]byte, k)
	valid[1] = 1
	for i := 2; i < k-19-32-1; i++ {
		valid[i] = 0xff
	}
	copy(valid[k-19-32:], []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20})
	copy(valid[k-32:], digest[:])
	f.Add(msg, valid)
	for _, at := range []int{0, 1, 2, k / 2, k - 19 - 32 - 1, k - 19 - 32 + 13, k - 1} {
		em := bytes.Clone(valid)
		em[at] ^= 0x01
		f.Add(msg, em)
	}
	f.Add(msg, valid[1:])
	f.Add([]byte{}, valid)

	verifier, err := legacy.NewVerifier(&priv.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg, em []byte) {
		if len(em) > k {
			em = em[:k]
		}
		m := new(big.Int).SetBytes(em)
		if m.Cmp(priv.N) >= 0 {
			return
		}
		sig := new(big.Int).Exp(m, priv.D, priv.N).FillBytes(make([]byte, k))
		want := legacy.Verify(&priv.PublicKey, msg, sig)
		got := verifier.Verify(msg, sig)
		if (got == nil) != (want == nil) {
			t.Fatalf("Verifier.Verify = %v, crypto/rsa = %v, for em %x", got, want, em)
		}
		if got != nil && !errors.Is(got, rsa.ErrVerification) {
			t.Fatalf("Verifier.Verify = %v, want rsa.ErrVerification", got)
		}
		// A signature of the wrong length is refused before any arithmetic.
		if verifier.Verify(msg, sig[1:]) == nil || verifier.Verify(msg, append([]byte{0}, sig...)) == nil {
			t.Fatal("Verifier accepted a signature of the wrong length")
		}
	})
}
