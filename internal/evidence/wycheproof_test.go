package evidence_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tes-traffic/tes/internal/evidence"
)

// wycheproofEdDSA is the part of Wycheproof's eddsa_verify_schema_v1 we read.
type wycheproofEdDSA struct {
	Algorithm     string `json:"algorithm"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []struct {
		PublicKeyDer string `json:"publicKeyDer"`
		PublicKey    struct {
			Curve string `json:"curve"`
			PK    string `json:"pk"`
		} `json:"publicKey"`
		Tests []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Msg     string   `json:"msg"`
			Sig     string   `json:"sig"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestWycheproofEd25519 runs every Wycheproof Ed25519 vector through the
// one verification path of the TLS suite and of `tes evidence verify`
// (VerifySignature) and through the Verifier the TLS suite keeps per
// connection, with the key taken from its SubjectPublicKeyInfo DER as a
// certificate carries it.
func TestWycheproofEd25519(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "wycheproof", "ed25519_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofEdDSA
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Algorithm != "EDDSA" {
		t.Fatalf("algorithm = %q, want EDDSA", f.Algorithm)
	}
	ran := 0
	for _, g := range f.TestGroups {
		if g.PublicKey.Curve != "edwards25519" {
			t.Fatalf("curve %q", g.PublicKey.Curve)
		}
		der := mustHex(t, g.PublicKeyDer)
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatalf("publicKeyDer: %v", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok || hex.EncodeToString(pub) != g.PublicKey.PK {
			t.Fatalf("publicKeyDer does not hold pk %s", g.PublicKey.PK)
		}
		verifier, err := evidence.NewVerifier(pub)
		if err != nil {
			t.Fatalf("NewVerifier(%s): %v", g.PublicKey.PK, err)
		}
		for _, tc := range g.Tests {
			ran++
			t.Run(fmt.Sprintf("tcId=%d", tc.TcID), func(t *testing.T) {
				t.Parallel()
				msg, sig := mustHex(t, tc.Msg), mustHex(t, tc.Sig)
				err := evidence.VerifySignature(pub, msg, sig)
				// The TLS suite's per-connection Verifier decides the same.
				if verr := verifier.Verify(msg, sig); (verr == nil) != (err == nil) {
					t.Fatalf("%s %v: Verifier.Verify = %v, VerifySignature = %v", tc.Comment, tc.Flags, verr, err)
				}
				switch tc.Result {
				case "valid":
					if err != nil {
						t.Errorf("%s %v: valid signature refused: %v", tc.Comment, tc.Flags, err)
					}
				case "invalid":
					if err == nil {
						t.Errorf("%s %v: invalid signature accepted", tc.Comment, tc.Flags)
					}
				default:
					t.Fatalf("result %q", tc.Result)
				}
			})
		}
	}
	if ran != f.NumberOfTests {
		t.Fatalf("ran %d vectors, the file has %d", ran, f.NumberOfTests)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
