package enroll_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes/internal/enroll"
)

const caHash = "sha256:65788c88e68009fd072cdcb0cfe59816fcd066ccf685fc56eeeea9d5c2e503e6"

func mustToken(t testing.TB, addr string) *enroll.Token {
	t.Helper()
	tok, err := enroll.Generate(bytes.NewReader(bytes.Repeat([]byte{7}, 40)), caHash, addr, time.Unix(1795828454, 0))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenRoundTrip(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:9443", "officer.example.org:443", "[2001:db8::1]:9443"} {
		tok := mustToken(t, addr)
		s := tok.String()
		got, err := enroll.Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		if *got != *tok {
			t.Errorf("Parse(String()) = %+v, want %+v", got, tok)
		}
		if got.String() != s {
			t.Errorf("String() after Parse = %q, want %q", got.String(), s)
		}
		if strings.Contains(tok.Redacted(), s[len(enroll.Prefix)+65+17:][:43]) {
			t.Errorf("Redacted() %q shows the secret", tok.Redacted())
		}
	}
	if got := mustToken(t, "").ID; got != "0707070707070707" {
		t.Errorf("ID = %q, want the first 8 random bytes in hex", got)
	}
}

// TestParseStrict: one token has exactly one spelling; everything else is
// refused with ErrMalformed and never a panic.
func TestParseStrict(t *testing.T) {
	good := mustToken(t, "127.0.0.1:9443").String()
	hash := strings.TrimPrefix(caHash, "sha256:")
	body := strings.TrimPrefix(good, enroll.Prefix)
	parts := strings.SplitN(strings.SplitN(body, "@", 2)[0], ".", 4)
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", body},
		{"upper-case prefix", "TES-JOIN." + body},
		{"three parts", enroll.Prefix + strings.Join(parts[:3], ".")},
		{"five parts", enroll.Prefix + strings.Join(parts, ".") + ".1"},
		{"upper-case hash", enroll.Prefix + strings.ToUpper(hash) + "." + strings.Join(parts[1:], ".")},
		{"short hash", enroll.Prefix + hash[:62] + "." + strings.Join(parts[1:], ".")},
		{"short id", enroll.Prefix + parts[0] + "." + parts[1][:15] + "." + parts[2] + "." + parts[3]},
		{"id not hex", enroll.Prefix + parts[0] + ".070707070707070g." + parts[2] + "." + parts[3]},
		{"padded secret", enroll.Prefix + parts[0] + "." + parts[1] + "." + parts[2] + "=." + parts[3]},
		{"secret std base64", enroll.Prefix + parts[0] + "." + parts[1] + "." + strings.Repeat("+", 43) + "." + parts[3]},
		{"secret non-canonical last char", enroll.Prefix + parts[0] + "." + parts[1] + "." + parts[2][:42] + "B." + parts[3]},
		{"expiry leading zero", enroll.Prefix + strings.Join(parts[:3], ".") + ".0" + parts[3]},
		{"expiry negative", enroll.Prefix + strings.Join(parts[:3], ".") + ".-1"},
		{"expiry empty", enroll.Prefix + strings.Join(parts[:3], ".") + "."},
		{"expiry plus", enroll.Prefix + strings.Join(parts[:3], ".") + ".+1795828454"},
		{"addr without port", enroll.Prefix + strings.Join(parts, ".") + "@127.0.0.1"},
		{"addr port 0", enroll.Prefix + strings.Join(parts, ".") + "@127.0.0.1:0"},
		{"addr port leading zero", enroll.Prefix + strings.Join(parts, ".") + "@127.0.0.1:09443"},
		{"addr with space", enroll.Prefix + strings.Join(parts, ".") + "@exa mple:9443"},
		{"addr unbracketed v6", enroll.Prefix + strings.Join(parts, ".") + "@2001:db8::1:9443"},
		{"addr empty", enroll.Prefix + strings.Join(parts, ".") + "@"},
		{"trailing space", good + " "},
		{"too long", good + strings.Repeat("a", enroll.MaxTokenLen)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := enroll.Parse(tc.in)
			if !errors.Is(err, enroll.ErrMalformed) {
				t.Fatalf("Parse(%q) = %+v, %v; want ErrMalformed", tc.in, tok, err)
			}
			if strings.Contains(err.Error(), parts[2]) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}
}

// TestProof: the proof verifies only for the same token, exporter and CSR,
// and the verifier (what the store keeps) is not the secret or its hash.
func TestProof(t *testing.T) {
	tok := mustToken(t, "")
	other := mustToken(t, "")
	other.Secret[0] ^= 1
	exp := bytes.Repeat([]byte{1}, enroll.ExporterLen)
	csr := []byte("csr der")
	proof := tok.Prove(exp, csr)
	v := tok.Verifier()
	if sum := sha256.Sum256(tok.Secret[:]); bytes.Equal(v, sum[:]) || bytes.Equal(v, tok.Secret[:]) {
		t.Fatal("the verifier is the secret or its plain hash")
	}
	if !enroll.VerifyProof(v, tok.ID, exp, csr, proof) {
		t.Fatal("a correct proof does not verify")
	}
	exp2 := bytes.Repeat([]byte{2}, enroll.ExporterLen)
	for name, ok := range map[string]bool{
		"another connection (exporter)": enroll.VerifyProof(v, tok.ID, exp2, csr, proof),
		"another CSR":                   enroll.VerifyProof(v, tok.ID, exp, []byte("other csr"), proof),
		"another token id":              enroll.VerifyProof(v, "0000000000000000", exp, csr, proof),
		"another secret":                enroll.VerifyProof(v, tok.ID, exp, csr, other.Prove(exp, csr)),
		"short exporter":                enroll.VerifyProof(v, tok.ID, exp[:16], csr, proof),
		"truncated proof":               enroll.VerifyProof(v, tok.ID, exp, csr, proof[:63]),
		"short verifier":                enroll.VerifyProof(v[:31], tok.ID, exp, csr, proof),
	} {
		if ok {
			t.Errorf("%s: proof verified", name)
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	if _, err := enroll.Generate(bytes.NewReader(make([]byte, 40)), "sha256:abc", "", time.Now()); err == nil {
		t.Error("Generate accepted a short CA hash")
	}
	if _, err := enroll.Generate(bytes.NewReader(make([]byte, 40)), caHash, "no-port", time.Now()); err == nil {
		t.Error("Generate accepted an address without a port")
	}
}

// FuzzParseToken: Parse never panics, and whatever it accepts it writes
// back byte for byte (one token, one spelling).
func FuzzParseToken(f *testing.F) {
	f.Add(mustToken(f, "").String())
	f.Add(mustToken(f, "127.0.0.1:9443").String())
	f.Add(mustToken(f, "[::1]:9443").String())
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := enroll.Parse(s)
		if err != nil {
			if !errors.Is(err, enroll.ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got := tok.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
	})
}
