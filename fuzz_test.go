package tes_test

import (
	"testing"

	"github.com/tes-traffic/tes"
)

// FuzzNormalizePlate: an accepted plate is canonical (normalising it again
// changes nothing) and within the documented alphabet and length.
func FuzzNormalizePlate(f *testing.F) {
	for _, s := range []string{"34abc123", " ab-12 c ", "", "ÄB", "A  B", "ABCDEFGHIJKLMNOPQ", "<script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := tes.NormalizePlate(in)
		if err != nil {
			if tes.ErrorCode(err) != tes.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if len(p) == 0 || len(p) > tes.MaxPlateLen {
			t.Fatalf("accepted %q of length %d", p, len(p))
		}
		for _, c := range p {
			if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '-') {
				t.Fatalf("accepted %q with %q", p, c)
			}
		}
		if again, err := tes.NormalizePlate(p); err != nil || again != p {
			t.Fatalf("not canonical: %q -> %q, %v", p, again, err)
		}
	})
}

// FuzzValidateSpeed: exactly 0..500 is accepted.
func FuzzValidateSpeed(f *testing.F) {
	for _, n := range []int{-1, 0, 120, 500, 501, 1 << 40} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n int) {
		if err := tes.ValidateSpeed(n); (err == nil) != (n >= 0 && n <= tes.MaxSpeed) {
			t.Fatalf("ValidateSpeed(%d) = %v", n, err)
		}
	})
}
