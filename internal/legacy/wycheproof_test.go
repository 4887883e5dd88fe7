package legacy_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// wycheproofTest is the part of a Wycheproof test case common to both files.
type wycheproofTest struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Msg     string   `json:"msg"`
	CT      string   `json:"ct"`
	Label   string   `json:"label"`
	Sig     string   `json:"sig"`
	Result  string   `json:"result"`
}

func (tc wycheproofTest) name() string {
	return fmt.Sprintf("tc%d/%s", tc.TcID, tc.Result)
}

func TestWycheproofOAEPSHA1(t *testing.T) {
	t.Parallel()
	var file struct {
		Algorithm     string `json:"algorithm"`
		NumberOfTests int    `json:"numberOfTests"`
		TestGroups    []struct {
			KeySize         int              `json:"keySize"`
			SHA             string           `json:"sha"`
			MGF             string           `json:"mgf"`
			MGFSHA          string           `json:"mgfSha"`
			PrivateKeyPKCS8 string           `json:"privateKeyPkcs8"`
			Tests           []wycheproofTest `json:"tests"`
		} `json:"testGroups"`
	}
	mustReadJSON(t, "wycheproof/rsa_oaep_2048_sha1_mgf1sha1_test.json", &file)
	if file.Algorithm != "RSAES-OAEP" {
		t.Fatalf("algorithm = %q, want RSAES-OAEP", file.Algorithm)
	}

	var ran atomic.Int64
	t.Cleanup(func() {
		// Runs after every parallel subtest has finished.
		if got, want := ran.Load(), int64(36); got != want || got != int64(file.NumberOfTests) {
			t.Errorf("ran %d OAEP vectors, want %d (file says %d)", got, want, file.NumberOfTests)
		}
	})
	for _, g := range file.TestGroups {
		if g.SHA != "SHA-1" || g.MGF != "MGF1" || g.MGFSHA != "SHA-1" || g.KeySize != 2048 {
			t.Fatalf("unexpected group parameters %s/%s/%s/%d", g.SHA, g.MGF, g.MGFSHA, g.KeySize)
		}
		key, err := x509.ParsePKCS8PrivateKey(mustHex(t, g.PrivateKeyPKCS8))
		if err != nil {
			t.Fatalf("parse group key: %v", err)
		}
		priv := key.(*rsa.PrivateKey)
		for _, tc := range g.Tests {
			t.Run(tc.name(), func(t *testing.T) {
				t.Parallel()
				ran.Add(1)
				ct, msg, label := mustHex(t, tc.CT), mustHex(t, tc.Msg), mustHex(t, tc.Label)
				got, err := legacy.DecryptOAEP(priv, ct, label)
				switch tc.Result {
				case "valid":
					if err != nil {
						t.Fatalf("%s %v: decrypt: %v", tc.Comment, tc.Flags, err)
					}
					if !bytes.Equal(got, msg) {
						t.Fatalf("decrypt = %x, want %x", got, msg)
					}
				case "invalid":
					if err == nil {
						t.Fatalf("%s %v: decrypted to %x, want an error", tc.Comment, tc.Flags, got)
					}
				default:
					t.Fatalf("unexpected result %q", tc.Result)
				}
				// DecryptKey runs the same path and must agree: a key only for an 8-byte,
				// empty-label plaintext, an error otherwise.
				k, err := legacy.DecryptKey(priv, ct)
				if tc.Result == "valid" && len(msg) == legacy.DESKeySize && len(label) == 0 {
					if err != nil || !bytes.Equal(k, msg) {
						t.Fatalf("DecryptKey = %x, %v; want %x", k, err, msg)
					}
				} else if err == nil {
					t.Fatalf("DecryptKey = %x, want an error", k)
				}
			})
		}
	}
}

func TestWycheproofPKCS1v15SHA256(t *testing.T) {
	t.Parallel()
	var file struct {
		Algorithm     string `json:"algorithm"`
		NumberOfTests int    `json:"numberOfTests"`
		TestGroups    []struct {
			KeySize      int              `json:"keySize"`
			SHA          string           `json:"sha"`
			PublicKeyDER string           `json:"publicKeyDer"`
			PublicKeyPEM string           `json:"publicKeyPem"`
			Tests        []wycheproofTest `json:"tests"`
		} `json:"testGroups"`
	}
	mustReadJSON(t, "wycheproof/rsa_signature_2048_sha256_test.json", &file)
	if file.Algorithm != "RSASSA-PKCS1-v1_5" {
		t.Fatalf("algorithm = %q, want RSASSA-PKCS1-v1_5", file.Algorithm)
	}

	var ran, valid, invalid, acceptable atomic.Int64
	t.Cleanup(func() {
		if got, want := ran.Load(), int64(259); got != want || got != int64(file.NumberOfTests) {
			t.Errorf("ran %d signature vectors, want %d (file says %d)", got, want, file.NumberOfTests)
		}
		if v, i, a := valid.Load(), invalid.Load(), acceptable.Load(); v != 9 || i != 249 || a != 1 {
			t.Errorf("valid/invalid/acceptable = %d/%d/%d, want 9/249/1", v, i, a)
		}
	})
	for gi, g := range file.TestGroups {
		if g.SHA != "SHA-256" || g.KeySize != 2048 {
			t.Fatalf("unexpected group parameters %s/%d", g.SHA, g.KeySize)
		}
		der := mustHex(t, g.PublicKeyDER)
		key, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatalf("parse group key: %v", err)
		}
		pub := key.(*rsa.PublicKey)
		// The e=65537 group's key is exactly what ParsePublicKeyPEM must accept; the two e=3
		// groups exist for signature forgery tests and ParsePublicKeyPEM must refuse them.
		parsed, parsedDER, err := legacy.ParsePublicKeyPEM(g.PublicKeyPEM)
		if pub.E == 65537 {
			if err != nil || !parsed.Equal(pub) || !bytes.Equal(parsedDER, der) {
				t.Fatalf("group %d: ParsePublicKeyPEM = %v, %v", gi, parsed, err)
			}
		} else if err == nil {
			t.Fatalf("group %d: ParsePublicKeyPEM accepted e=%d", gi, pub.E)
		}
		// The Verifier takes the keys ParsePublicKeyPEM takes, and checks every vector of
		// theirs with the same outcome as Verify.
		verifier, err := legacy.NewVerifier(pub)
		if (err == nil) != (pub.E == 65537) {
			t.Fatalf("group %d: NewVerifier(e=%d) = %v", gi, pub.E, err)
		}

		for _, tc := range g.Tests {
			t.Run(fmt.Sprintf("e%d/%s", pub.E, tc.name()), func(t *testing.T) {
				t.Parallel()
				ran.Add(1)
				msg, sig := mustHex(t, tc.Msg), mustHex(t, tc.Sig)
				err := legacy.Verify(pub, msg, sig)
				if verifier != nil {
					if verr := verifier.Verify(msg, sig); (verr == nil) != (err == nil) {
						t.Fatalf("%s %v: Verifier.Verify = %v, Verify = %v", tc.Comment, tc.Flags, verr, err)
					}
				}
				switch tc.Result {
				case "valid":
					valid.Add(1)
					if err != nil {
						t.Fatalf("%s %v: %v", tc.Comment, tc.Flags, err)
					}
				case "invalid":
					invalid.Add(1)
					if err == nil {
						t.Fatalf("%s %v: accepted an invalid signature", tc.Comment, tc.Flags)
					}
				case "acceptable":
					acceptable.Add(1)
					t.Logf("%s %v: Verify = %v (either outcome is allowed)", tc.Comment, tc.Flags, err)
				default:
					t.Fatalf("unexpected result %q", tc.Result)
				}
			})
		}
	}
}
