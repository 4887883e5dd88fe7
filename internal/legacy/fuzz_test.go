package legacy_test

import (
	"bytes"
	"errors"
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
		if bits := pub.N.BitLen(); bits < 2048 || bits > 4096 || pub.E != 65537 {
			t.Fatalf("accepted a %d-bit key with e=%d", bits, pub.E)
		}
		// Whatever was accepted re-encodes to the same DER and parses again.
		pub2, der2, err := legacy.ParsePublicKeyPEM(legacy.MarshalPublicKeyPEM(pub))
		if err != nil || !pub2.Equal(pub) || !bytes.Equal(der2, der) {
			t.Fatalf("re-encoded key does not round-trip: %v", err)
		}
	})
}
