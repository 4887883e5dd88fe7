package legacy_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/tes-traffic/tes/internal/legacy"
)

var testDESKey = []byte("\x2f\x8b\xcb\x6e\xf8\x2a\xc7\x16")

func TestNewSessionCipherKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 7, 9, 16, 24, 32} {
		if c, err := legacy.NewSessionCipher(make([]byte, n)); err == nil || c != nil {
			t.Errorf("NewSessionCipher accepted a %d-byte key", n)
		}
	}
	// Parity bits are ignored: keys that differ only in them are the same DES key.
	a := mustSessionCipher(t, []byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00})
	b := mustSessionCipher(t, []byte{0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01})
	iv := bytes.Repeat([]byte{7}, 8)
	wa, err := a.Seal(bytes.NewReader(iv), []byte("parity"))
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.Seal(bytes.NewReader(iv), []byte("parity"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wa, wb) {
		t.Fatal("keys differing only in parity bits encrypt differently")
	}
}

func TestSessionCipherRoundTrip(t *testing.T) {
	t.Parallel()
	c := mustSessionCipher(t, testDESKey)
	for n := range 41 {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		wire, err := c.Seal(rand.Reader, pt)
		if err != nil {
			t.Fatalf("Seal(%d bytes): %v", n, err)
		}
		if want := 8 + (n/8+1)*8; len(wire) != want {
			t.Fatalf("Seal(%d bytes) gave %d bytes, want %d", n, len(wire), want)
		}
		got, err := c.Open(wire)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open(Seal(%d bytes)) = %x, %v", n, got, err)
		}
		if cap(got) != len(got) {
			t.Fatalf("Open result has spare capacity %d over the padding", cap(got)-len(got))
		}
	}
	// A nil reader means crypto/rand, and each call gets a fresh IV.
	w1, err1 := c.Seal(nil, []byte("x"))
	w2, err2 := c.Seal(nil, []byte("x"))
	if err1 != nil || err2 != nil || bytes.Equal(w1[:8], w2[:8]) {
		t.Fatalf("Seal(nil): %v, %v, IVs %x %x", err1, err2, w1[:8], w2[:8])
	}
}

func TestSessionCipherSealRandFailure(t *testing.T) {
	t.Parallel()
	c := mustSessionCipher(t, testDESKey)
	boom := errors.New("boom")
	for _, r := range []io.Reader{iotest.ErrReader(boom), bytes.NewReader(make([]byte, 7))} {
		if wire, err := c.Seal(r, []byte("data")); err == nil || wire != nil {
			t.Errorf("Seal with a failing reader = %x, %v; want an error", wire, err)
		}
	}
	if _, err := c.Seal(iotest.ErrReader(boom), nil); !errors.Is(err, boom) {
		t.Errorf("Seal error %v does not wrap the reader's error", err)
	}
}

// referenceUnpad is the obvious PKCS#7 check, to compare Open's constant-time one against.
func referenceUnpad(b []byte) ([]byte, bool) {
	p := int(b[len(b)-1])
	if p < 1 || p > 8 {
		return nil, false
	}
	for _, x := range b[len(b)-p:] {
		if int(x) != p {
			return nil, false
		}
	}
	return b[:len(b)-p], true
}

// TestSessionCipherOpenPadding tries every final byte value with fillers that are right, wrong at
// each position, and two-block messages, against the reference check.
func TestSessionCipherOpenPadding(t *testing.T) {
	t.Parallel()
	c := mustSessionCipher(t, testDESKey)
	iv := []byte("IVIVIVIV")
	var raws [][]byte
	for last := range 256 {
		for wrong := -1; wrong < 8; wrong++ {
			for _, blocks := range []int{1, 2} {
				raw := bytes.Repeat([]byte{byte(last)}, 8*blocks)
				raw[0] = 'A'
				if wrong >= 0 {
					raw[len(raw)-1-wrong] ^= 0x40
				}
				raws = append(raws, raw)
			}
		}
	}
	var accepted, rejected int
	for _, raw := range raws {
		wire := append(bytes.Clone(iv), raw...)
		c.EncryptCBC(wire[:8], wire[8:])
		got, err := c.Open(wire)
		want, ok := referenceUnpad(raw)
		switch {
		case ok && (err != nil || !bytes.Equal(got, want)):
			t.Fatalf("raw %x: Open = %x, %v; want %x", raw, got, err, want)
		case !ok && (!errors.Is(err, legacy.ErrPadding) || got != nil):
			t.Fatalf("raw %x: Open = %x, %v; want ErrPadding", raw, got, err)
		case ok:
			accepted++
		default:
			rejected++
		}
	}
	if accepted == 0 || rejected == 0 {
		t.Fatalf("accepted %d, rejected %d: the table does not cover both outcomes", accepted, rejected)
	}
}

func TestSessionCipherOpenLength(t *testing.T) {
	t.Parallel()
	c := mustSessionCipher(t, testDESKey)
	for _, n := range []int{0, 1, 7, 8, 9, 15, 17, 23, 31, 33} {
		if got, err := c.Open(make([]byte, n)); !errors.Is(err, legacy.ErrCiphertext) || got != nil {
			t.Errorf("Open(%d bytes) = %x, %v; want ErrCiphertext", n, got, err)
		}
	}
}

func TestSessionCipherOpenDoesNotModifyInput(t *testing.T) {
	t.Parallel()
	c := mustSessionCipher(t, testDESKey)
	wire, err := c.Seal(rand.Reader, []byte("immutable input"))
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(wire)
	if _, err := c.Open(wire); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wire, orig) {
		t.Fatal("Open modified its input")
	}
}
