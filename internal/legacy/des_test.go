package legacy_test

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// desImpl is one way of running raw (unpadded) DES-CBC: the standard library, and the CBC code
// inside SessionCipher. ECB of one block is CBC with a zero IV.
type desImpl struct {
	name    string
	encrypt func(tb testing.TB, key, iv, pt []byte) []byte
	decrypt func(tb testing.TB, key, iv, ct []byte) []byte
}

var desImpls = []desImpl{
	{
		name: "crypto-des",
		encrypt: func(tb testing.TB, key, iv, pt []byte) []byte {
			out := make([]byte, len(pt))
			cipher.NewCBCEncrypter(mustDES(tb, key), iv).CryptBlocks(out, pt)
			return out
		},
		decrypt: func(tb testing.TB, key, iv, ct []byte) []byte {
			out := make([]byte, len(ct))
			cipher.NewCBCDecrypter(mustDES(tb, key), iv).CryptBlocks(out, ct)
			return out
		},
	},
	{
		name: "SessionCipher",
		encrypt: func(tb testing.TB, key, iv, pt []byte) []byte {
			out := bytes.Clone(pt)
			mustSessionCipher(tb, key).EncryptCBC(iv, out)
			return out
		},
		decrypt: func(tb testing.TB, key, iv, ct []byte) []byte {
			out := make([]byte, len(ct))
			mustSessionCipher(tb, key).DecryptCBC(out, iv, ct)
			return out
		},
	},
}

func mustDES(tb testing.TB, key []byte) cipher.Block {
	tb.Helper()
	b, err := des.NewCipher(key)
	if err != nil {
		tb.Fatalf("des.NewCipher: %v", err)
	}
	return b
}

func mustSessionCipher(tb testing.TB, key []byte) *legacy.SessionCipher {
	tb.Helper()
	c, err := legacy.NewSessionCipher(key)
	if err != nil {
		tb.Fatalf("NewSessionCipher: %v", err)
	}
	return c
}

var zeroIV = make([]byte, des.BlockSize)

// ecb runs ECB block by block through impl's CBC with a zero IV.
func ecb(tb testing.TB, f func(testing.TB, []byte, []byte, []byte) []byte, key, in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i += des.BlockSize {
		out = append(out, f(tb, key, zeroIV, in[i:i+des.BlockSize])...)
	}
	return out
}

type desVectors struct {
	ECB []struct {
		ID, Source, Key, PT, CT string
	} `json:"ecb"`
	CBC []struct {
		ID, Source, Key, IV, PT, CT string
	} `json:"cbc"`
	RivestChain struct {
		X0  string `json:"x0"`
		X16 string `json:"x16"`
	} `json:"rivest_chain"`
	WeakKeys         []string    `json:"weak_keys"`
	SemiWeakKeyPairs [][2]string `json:"semi_weak_key_pairs"`
}

func mustDESVectors(tb testing.TB) *desVectors {
	tb.Helper()
	var v desVectors
	mustReadJSON(tb, "des/des_vectors.json", &v)
	return &v
}

func TestDESKnownAnswers(t *testing.T) {
	t.Parallel()
	v := mustDESVectors(t)
	if len(v.ECB) != 156 || len(v.CBC) != 2 {
		t.Fatalf("have %d ECB and %d CBC vectors, want 156 and 2", len(v.ECB), len(v.CBC))
	}
	for _, impl := range desImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range v.ECB {
				t.Run("ecb/"+tc.ID, func(t *testing.T) {
					t.Parallel()
					key, pt, ct := mustHex(t, tc.Key), mustHex(t, tc.PT), mustHex(t, tc.CT)
					if got := ecb(t, impl.encrypt, key, pt); !bytes.Equal(got, ct) {
						t.Errorf("encrypt = %x, want %x (%s)", got, ct, tc.Source)
					}
					if got := ecb(t, impl.decrypt, key, ct); !bytes.Equal(got, pt) {
						t.Errorf("decrypt = %x, want %x (%s)", got, pt, tc.Source)
					}
				})
			}
			for _, tc := range v.CBC {
				t.Run("cbc/"+tc.ID, func(t *testing.T) {
					t.Parallel()
					key, iv, pt, ct := mustHex(t, tc.Key), mustHex(t, tc.IV), mustHex(t, tc.PT), mustHex(t, tc.CT)
					if got := impl.encrypt(t, key, iv, pt); !bytes.Equal(got, ct) {
						t.Errorf("encrypt = %x, want %x", got, ct)
					}
					if got := impl.decrypt(t, key, iv, ct); !bytes.Equal(got, pt) {
						t.Errorf("decrypt = %x, want %x", got, pt)
					}
				})
			}
			t.Run("rivest-chain", func(t *testing.T) {
				t.Parallel()
				x := mustHex(t, v.RivestChain.X0)
				for i := range 16 {
					key := x
					if i%2 == 0 {
						x = impl.encrypt(t, key, zeroIV, x)
					} else {
						x = impl.decrypt(t, key, zeroIV, x)
					}
				}
				if want := mustHex(t, v.RivestChain.X16); !bytes.Equal(x, want) {
					t.Errorf("X16 = %x, want %x", x, want)
				}
			})
		})
	}
}

// TestDESWeakKeys checks the defining property of the weak keys (E_k is an involution) and of
// the semi-weak pairs (E_k1 undoes E_k2). The legacy protocol does not reject them (nor does
// pycryptodome's DES), so this documents the primitive rather than a policy.
func TestDESWeakKeys(t *testing.T) {
	t.Parallel()
	v := mustDESVectors(t)
	if len(v.WeakKeys)+len(v.SemiWeakKeyPairs) != 10 {
		t.Fatalf("have %d weak keys and %d semi-weak pairs, want 10 in all", len(v.WeakKeys), len(v.SemiWeakKeyPairs))
	}
	blocks := [][]byte{zeroIV, []byte("legacyTE"), mustHex(t, "0123456789abcdef")}
	type pair struct{ name, k1, k2 string }
	var pairs []pair
	for _, k := range v.WeakKeys {
		pairs = append(pairs, pair{"weak/" + k, k, k})
	}
	for _, p := range v.SemiWeakKeyPairs {
		pairs = append(pairs, pair{"semi-weak/" + p[0] + "-" + p[1], p[0], p[1]}, pair{"semi-weak/" + p[1] + "-" + p[0], p[1], p[0]})
	}
	for _, impl := range desImpls {
		for _, p := range pairs {
			t.Run(impl.name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				k1, k2 := mustHex(t, p.k1), mustHex(t, p.k2)
				for _, x := range blocks {
					if got := impl.encrypt(t, k1, zeroIV, impl.encrypt(t, k2, zeroIV, x)); !bytes.Equal(got, x) {
						t.Errorf("E_k1(E_k2(%x)) = %x, want the input back", x, got)
					}
				}
			})
		}
	}
}

// cavpCase is one case of a NIST CAVP TCBC*.rsp file.
type cavpCase struct {
	file, section   string
	count           string
	key, iv, pt, ct []byte
}

func (c cavpCase) name() string {
	return fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(c.file, ".rsp"), c.section, c.count)
}

// mustParseCAVP parses a CAVP .rsp file: "[ENCRYPT]"/"[DECRYPT]" sections of cases, each
// starting at "COUNT = n" and holding KEYs, IV, PLAINTEXT and CIPHERTEXT.
func mustParseCAVP(tb testing.TB, name string) []cavpCase {
	tb.Helper()
	var (
		cases   []cavpCase
		section string
		cur     *cavpCase
	)
	flush := func() {
		if cur == nil {
			return
		}
		if cur.key == nil || cur.iv == nil || cur.pt == nil || cur.ct == nil {
			tb.Fatalf("%s: incomplete case %s", name, cur.name())
		}
		cases = append(cases, *cur)
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(mustReadFile(tb, "des/nist_cavp/"+name)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case line == "[ENCRYPT]" || line == "[DECRYPT]":
			flush()
			section = strings.ToLower(strings.Trim(line, "[]"))
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok {
			tb.Fatalf("%s: unexpected line %q", name, line)
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		switch k {
		case "COUNT":
			flush()
			if section == "" {
				tb.Fatalf("%s: case outside a section", name)
			}
			cur = &cavpCase{file: name, section: section, count: val}
		case "KEYs", "IV", "PLAINTEXT", "CIPHERTEXT":
			if cur == nil {
				tb.Fatalf("%s: %s outside a case", name, k)
			}
			b := mustHex(tb, val)
			switch k {
			case "KEYs":
				cur.key = b
			case "IV":
				cur.iv = b
			case "PLAINTEXT":
				cur.pt = b
			case "CIPHERTEXT":
				cur.ct = b
			}
		default:
			tb.Fatalf("%s: unexpected field %q", name, k)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	flush()
	return cases
}

func TestDESNISTCAVP(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(testdataDir, "des", "nist_cavp", "TCBC*.rsp"))
	if err != nil || len(files) != 5 {
		t.Fatalf("found %d CAVP files (%v), want 5", len(files), err)
	}
	var cases []cavpCase
	for _, f := range files {
		cases = append(cases, mustParseCAVP(t, filepath.Base(f))...)
	}
	if len(cases) != 470 {
		t.Fatalf("parsed %d CAVP cases, want 470", len(cases))
	}
	var ran atomic.Int64
	t.Cleanup(func() {
		if got, want := ran.Load(), int64(470*len(desImpls)); got != want {
			t.Errorf("ran %d CAVP cases, want %d", got, want)
		}
	})
	for _, impl := range desImpls {
		for _, tc := range cases {
			t.Run(impl.name+"/"+tc.name(), func(t *testing.T) {
				t.Parallel()
				ran.Add(1)
				// Each case states one relation; check it in both directions, whichever
				// section it comes from.
				if got := impl.encrypt(t, tc.key, tc.iv, tc.pt); !bytes.Equal(got, tc.ct) {
					t.Errorf("%s: encrypt = %x, want %x", tc.section, got, tc.ct)
				}
				if got := impl.decrypt(t, tc.key, tc.iv, tc.ct); !bytes.Equal(got, tc.pt) {
					t.Errorf("%s: decrypt = %x, want %x", tc.section, got, tc.pt)
				}
			})
		}
	}
}
