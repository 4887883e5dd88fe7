package atrest_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// wycheproofAEAD is the part of Wycheproof's aead_test_schema_v1 we read.
type wycheproofAEAD struct {
	Algorithm  string `json:"algorithm"`
	TestGroups []struct {
		KeySize int `json:"keySize"`
		IVSize  int `json:"ivSize"`
		TagSize int `json:"tagSize"`
		Tests   []struct {
			TcID    int      `json:"tcId"`
			Comment string   `json:"comment"`
			Flags   []string `json:"flags"`
			Key     string   `json:"key"`
			IV      string   `json:"iv"`
			AAD     string   `json:"aad"`
			Msg     string   `json:"msg"`
			CT      string   `json:"ct"`
			Tag     string   `json:"tag"`
			Result  string   `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// TestWycheproofAESGCM runs every Wycheproof AES-GCM vector with the
// parameters Keys uses (256-bit key, 96-bit nonce, 128-bit tag) through the
// primitive: crypto/cipher's GCM with an explicit nonce, and the
// random-nonce form Keys wraps, which reads the nonce from the front of the
// sealed value exactly as Keys.Open does.
func TestWycheproofAESGCM(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "wycheproof", "aes_gcm_test.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofAEAD
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Algorithm != "AES-GCM" {
		t.Fatalf("algorithm = %q, want AES-GCM", f.Algorithm)
	}
	ran := 0
	for _, g := range f.TestGroups {
		if g.KeySize != 256 || g.IVSize != 96 || g.TagSize != 128 {
			continue
		}
		for _, tc := range g.Tests {
			ran++
			t.Run(fmt.Sprintf("tcId=%d", tc.TcID), func(t *testing.T) {
				t.Parallel()
				key, iv, aad, msg, ct, tag := mustHex(t, tc.Key), mustHex(t, tc.IV), mustHex(t, tc.AAD), mustHex(t, tc.Msg), mustHex(t, tc.CT), mustHex(t, tc.Tag)
				block, err := aes.NewCipher(key)
				if err != nil {
					t.Fatal(err)
				}
				gcm, err := cipher.NewGCM(block)
				if err != nil {
					t.Fatal(err)
				}
				random, err := cipher.NewGCMWithRandomNonce(block)
				if err != nil {
					t.Fatal(err)
				}
				ctTag := append(bytes.Clone(ct), tag...)
				sealed := append(bytes.Clone(iv), ctTag...)

				switch tc.Result {
				case "valid":
					if got := gcm.Seal(nil, iv, msg, aad); !bytes.Equal(got, ctTag) {
						t.Errorf("Seal = %x, want %x (%s)", got, ctTag, tc.Comment)
					}
					if got, err := gcm.Open(nil, iv, ctTag, aad); err != nil || !bytes.Equal(got, msg) {
						t.Errorf("Open = %x, %v; want %x (%s)", got, err, msg, tc.Comment)
					}
					if got, err := random.Open(nil, nil, sealed, aad); err != nil || !bytes.Equal(got, msg) {
						t.Errorf("random-nonce Open = %x, %v; want %x (%s)", got, err, msg, tc.Comment)
					}
				case "invalid":
					if got, err := gcm.Open(nil, iv, ctTag, aad); err == nil {
						t.Errorf("Open accepted an invalid vector: %x (%s %v)", got, tc.Comment, tc.Flags)
					}
					if got, err := random.Open(nil, nil, sealed, aad); err == nil {
						t.Errorf("random-nonce Open accepted an invalid vector: %x (%s %v)", got, tc.Comment, tc.Flags)
					}
				default:
					// "acceptable" vectors depend on implementation
					// choices; none exist for these parameters today.
					t.Skipf("result %q", tc.Result)
				}
			})
		}
	}
	if ran == 0 {
		t.Fatal("no AES-256-GCM vectors with a 96-bit IV in the file")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
