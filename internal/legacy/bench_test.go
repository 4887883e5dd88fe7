package legacy_test

import (
	"crypto/rand"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// The DATA message of the recorded session: a 35-byte report, 48 bytes on the wire.

func BenchmarkVerify(b *testing.B) {
	v := mustInterop(b)
	client := mustPKCS1Key(b, v.ClientRSA)
	msg := make([]byte, 48)
	sig, err := legacy.Sign(client, msg)
	if err != nil {
		b.Fatal(err)
	}
	pub := &client.PublicKey
	b.Run("crypto-rsa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := legacy.Verify(pub, msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The Verifier the TES/1 server makes once per connection.
	b.Run("verifier", func(b *testing.B) {
		v, err := legacy.NewVerifier(pub)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Verify(msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	c := mustSessionCipher(b, testDESKey)
	wire, err := c.Seal(rand.Reader, []byte(`{"plate": "34ABC123", "speed": 120}`))
	if err != nil {
		b.Fatal(err)
	}
	if len(wire) != 48 {
		b.Fatalf("wire is %d bytes, want 48", len(wire))
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	c := mustSessionCipher(b, testDESKey)
	pt := []byte(`{"plate": "34ABC123", "speed": 120}`)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Seal(rand.Reader, pt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptKey(b *testing.B) {
	v := mustInterop(b)
	server := mustPKCS1Key(b, v.ServerRSA)
	ct := mustHex(b, v.OAEPSHA1DESKey[0].CT)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := legacy.DecryptKey(server, ct); err != nil {
			b.Fatal(err)
		}
	}
}
