package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"testing"

	"filippo.io/edwards25519"
)

// FuzzVerifier holds the Verifier to crypto/ed25519 (VerifySignature): a
// 32-byte key input is a seed, and the signature is that key's over msg
// with sig XORed into it (nothing, a flipped bit, a changed S); any other
// key input is taken as a raw public key, possibly not a point at all, and
// sig as the signature. Each input also checks the table against a plain
// scalar multiplication.
func FuzzVerifier(f *testing.F) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	f.Add(seed, []byte("report"), []byte{})
	f.Add(seed, []byte("report"), []byte{1})
	f.Add(seed, []byte(""), append(make([]byte, 63), 0x10))
	f.Add(seed, []byte("report"), append(make([]byte, 63), 0x80))
	f.Add(seed, []byte("report"), make([]byte, 65))
	// The identity as a key (a small-order point) and a non-canonical y.
	f.Add(append([]byte{1}, make([]byte, 31)...), []byte("m"), make([]byte, 64))
	f.Add(append(bytes.Repeat([]byte{0xff}, 31), 0x7f), []byte("m"), make([]byte, 64))
	f.Add([]byte{1, 2, 3}, []byte("m"), make([]byte, 64))

	f.Fuzz(func(t *testing.T, key, msg, sig []byte) {
		var pub ed25519.PublicKey
		if len(key) == ed25519.SeedSize {
			priv := ed25519.NewKeyFromSeed(key)
			pub = priv.Public().(ed25519.PublicKey)
			valid := ed25519.Sign(priv, msg)
			for i := range min(len(sig), len(valid)) {
				valid[i] ^= sig[i]
			}
			if len(sig) > len(valid) {
				valid = append(valid, sig[len(valid):]...)
			}
			sig = valid
		} else {
			pub = make(ed25519.PublicKey, ed25519.PublicKeySize)
			copy(pub, key)
		}
		want := VerifySignature(pub, msg, sig)
		v, err := NewVerifier(pub)
		if err != nil {
			if want == nil {
				t.Fatalf("NewVerifier(%x) = %v, but crypto/ed25519 accepts a signature by it", pub, err)
			}
			if _, perr := new(edwards25519.Point).SetBytes(pub); perr == nil {
				t.Fatalf("NewVerifier(%x) refused a valid point: %v", pub, err)
			}
			return
		}
		got := v.Verify(msg, sig)
		if (got == nil) != (want == nil) {
			t.Fatalf("key %x msg %x sig %x: Verifier.Verify = %v, crypto/ed25519 = %v", pub, msg, sig, got, want)
		}
		if got != nil && !errors.Is(got, ErrBadSignature) {
			t.Fatalf("Verifier.Verify = %v, want ErrBadSignature", got)
		}

		// [k](-A) from the table is what the library's own multiplication gives.
		h := sha512.Sum512(append(bytes.Clone(msg), sig...))
		k, _ := edwards25519.NewScalar().SetUniformBytes(h[:])
		a, _ := new(edwards25519.Point).SetBytes(pub)
		minusA := new(edwards25519.Point).Negate(a)
		if want := new(edwards25519.Point).ScalarMult(k, minusA); v.mulMinusA(k).Equal(want) != 1 {
			t.Fatalf("table multiple of %x by %x is wrong", pub, k.Bytes())
		}
	})
}

func TestSignedRadix16(t *testing.T) {
	for _, b := range [][]byte{
		make([]byte, 32),
		bytes.Repeat([]byte{0xff}, 32)[:31], // padded below
		{0x88, 0x88, 0x88},
		{0x77, 0x77, 0x77},
	} {
		s := make([]byte, 32)
		copy(s, b)
		d := signedRadix16(s)
		// Rebuild the number from its digits, little-endian, with carries.
		var back [33]int
		for i, di := range d {
			if di < -8 || di > 8 || i < 63 && di == 8 {
				t.Fatalf("%x: digit %d = %d out of range", s, i, di)
			}
			if i%2 == 0 {
				back[i/2] += int(di)
			} else {
				back[i/2] += int(di) * 16
			}
		}
		for i := range 32 {
			carry := back[i] >> 8 // floor division, also for negatives
			back[i] -= carry << 8
			back[i+1] += carry
		}
		for i := range 32 {
			if byte(back[i]) != s[i] {
				t.Fatalf("%x: digits rebuild to %v", s, back)
			}
		}
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	if _, err := NewVerifier(make([]byte, 31)); err == nil {
		t.Error("accepted a 31-byte key")
	}
	// y = 2 is not the y coordinate of any point on the curve.
	if _, err := NewVerifier(append([]byte{2}, make([]byte, 31)...)); err == nil {
		t.Error("accepted a key that is not a point")
	}
}

func BenchmarkVerify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := bytes.Repeat([]byte("r"), 200) // about what a report's evidence encoding is
	sig := ed25519.Sign(priv, msg)
	b.Run("crypto-ed25519", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := VerifySignature(pub, msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verifier", func(b *testing.B) {
		v, err := NewVerifier(pub)
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
	b.Run("new-verifier", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewVerifier(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
