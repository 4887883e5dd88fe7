package password_test

import (
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/password"
)

func TestHashVerify(t *testing.T) {
	h, err := password.Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id PHC with default params", h)
	}
	h2, _ := password.Hash("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct hors", false}, {"", false}, {"Correct horse", false}} {
		ok, rehash, err := password.Verify(tc.pw, h)
		if err != nil || ok != tc.want || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want %v, false, nil", tc.pw, ok, rehash, err, tc.want)
		}
	}
}

func TestVerifyRejectsMalformedAndLegacy(t *testing.T) {
	for _, enc := range []string{
		"",
		"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", // the original's unsalted SHA-256 of "password"
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
	} {
		if ok, _, err := password.Verify("password", enc); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want false and an error", enc, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	h, err := password.HashWith("pw-pw-pw-pw", password.Params{Memory: 8 * 1024, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	ok, rehash, err := password.Verify("pw-pw-pw-pw", h)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify weak hash = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
}

func TestGenerate(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		p := password.Generate()
		if len(p) != 20 || strings.ContainsAny(p, "0O1lI") || seen[p] {
			t.Fatalf("Generate() = %q: wrong length, look-alike character or repeat", p)
		}
		seen[p] = true
	}
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := password.Hash("correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}
