package atrest_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/atrest"
)

func mustKeys(t testing.TB, fill byte) *atrest.Keys {
	t.Helper()
	k, err := atrest.New(bytes.Repeat([]byte{fill}, atrest.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewRejectsWrongLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := atrest.New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) succeeded, want an error", n)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKeys(t, 1)
	for _, pt := range [][]byte{nil, []byte("AB-123-CD"), bytes.Repeat([]byte("x"), 4096)} {
		sealed := k.Seal(pt, []byte("plate"))
		if got, want := len(sealed), len(pt)+atrest.Overhead; got != want {
			t.Errorf("len(Seal) = %d, want %d", got, want)
		}
		if len(pt) > 0 && bytes.Contains(sealed, pt) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := k.Open(sealed, []byte("plate"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	k := mustKeys(t, 1)
	a, b := k.Seal([]byte("same"), nil), k.Seal([]byte("same"), nil)
	if bytes.Equal(a[:12], b[:12]) || bytes.Equal(a, b) {
		t.Errorf("two seals of the same plaintext are equal or share a nonce")
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	k := mustKeys(t, 1)
	sealed := k.Seal([]byte("AB-123-CD"), []byte("plate"))
	flipped := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name   string
		keys   *atrest.Keys
		sealed []byte
		aad    []byte
	}{
		{"wrong aad", k, sealed, []byte("location")},
		{"missing aad", k, sealed, nil},
		{"wrong key", mustKeys(t, 2), sealed, []byte("plate")},
		{"flipped nonce byte", k, flipped(0), []byte("plate")},
		{"flipped ciphertext byte", k, flipped(12), []byte("plate")},
		{"flipped tag byte", k, flipped(len(sealed) - 1), []byte("plate")},
		{"truncated by one", k, sealed[:len(sealed)-1], []byte("plate")},
		{"truncated to the overhead", k, sealed[:atrest.Overhead], []byte("plate")},
		{"shorter than a nonce", k, sealed[:5], []byte("plate")},
		{"empty", k, nil, []byte("plate")},
		{"extended", k, append(bytes.Clone(sealed), 0), []byte("plate")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.Open(tt.sealed, tt.aad)
			if !errors.Is(err, atrest.ErrDecrypt) {
				t.Errorf("Open = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	k1, k1again, k2 := mustKeys(t, 1), mustKeys(t, 1), mustKeys(t, 2)
	a := k1.Index("AB-123-CD")
	if len(a) != atrest.IndexSize {
		t.Fatalf("len(Index) = %d, want %d", len(a), atrest.IndexSize)
	}
	if b := k1.Index("AB-123-CD"); !bytes.Equal(a, b) {
		t.Errorf("Index is not deterministic: %x then %x", a, b)
	}
	if b := k1again.Index("AB-123-CD"); !bytes.Equal(a, b) {
		t.Errorf("Index differs between Keys from the same master key")
	}
	if b := k1.Index("AB-123-CE"); bytes.Equal(a, b) {
		t.Errorf("different plates share an index value")
	}
	if b := k2.Index("AB-123-CD"); bytes.Equal(a, b) {
		t.Errorf("Index does not depend on the key")
	}
	if got := k1.AppendIndex([]byte("prefix"), "AB-123-CD"); !bytes.Equal(got, append([]byte("prefix"), a...)) {
		t.Errorf("AppendIndex = %x, want prefix||Index", got)
	}
}

func TestIndexKeyIsDerived(t *testing.T) {
	// The index key comes from the master key through HKDF; using the master
	// key directly would make the index the plain HMAC under it.
	master := bytes.Repeat([]byte{7}, atrest.KeySize)
	k, err := atrest.New(master)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, master)
	m.Write([]byte("AB-123-CD"))
	if bytes.Equal(k.Index("AB-123-CD"), m.Sum(nil)) {
		t.Fatal("Index uses the master key itself")
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	path := filepath.Join(dir, "tes.key")

	k1, created, err := atrest.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v; want created", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", got)
	}
	text, _ := os.ReadFile(path)
	if len(text) != 65 || text[64] != '\n' {
		t.Errorf("key file = %q, want 64 hex characters and a newline", text)
	}

	k2, created, err := atrest.LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate = %v, %v; want loaded", created, err)
	}
	sealed := k1.Seal([]byte("AB-123-CD"), []byte("plate"))
	if got, err := k2.Open(sealed, []byte("plate")); err != nil || string(got) != "AB-123-CD" {
		t.Errorf("reloaded key cannot open what the created key sealed: %q, %v", got, err)
	}
	if !bytes.Equal(k1.Index("AB"), k2.Index("AB")) {
		t.Errorf("reloaded key gives a different index")
	}
	k3, err := atrest.Load(path)
	if err != nil || !bytes.Equal(k3.Index("AB"), k1.Index("AB")) {
		t.Errorf("Load = %v; want the same key", err)
	}
}

func TestLoadRefusesGroupOrOtherAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tes.key")
	if _, _, err := atrest.LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := atrest.LoadOrCreate(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("LoadOrCreate on a %04o file = %v; want an error saying chmod 600", mode, err)
		}
		if _, err := atrest.Load(path); err == nil {
			t.Errorf("Load on a %04o file succeeded", mode)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := atrest.Load(filepath.Join(t.TempDir(), "nope.key"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want an error wrapping fs.ErrNotExist", err)
	}
}

func TestLoadStrictFormat(t *testing.T) {
	good := strings.Repeat("ab", 32)
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"bare", good, true},
		{"newline", good + "\n", true},
		{"upper case", strings.ToUpper(good), true},
		{"two newlines", good + "\n\n", false},
		{"crlf", good + "\r\n", false},
		{"leading space", " " + good, false},
		{"short", good[:62], false},
		{"long", good + "ab", false},
		{"not hex", strings.Repeat("zz", 32), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tes.key")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := atrest.Load(path)
			if got := err == nil; got != tt.ok {
				t.Fatalf("Load(%q) error = %v; want ok=%v", tt.text, err, tt.ok)
			}
			if tt.ok {
				master, _ := hex.DecodeString(good)
				want, _ := atrest.New(master)
				if !bytes.Equal(k.Index("P"), want.Index("P")) {
					t.Errorf("Load read a different key")
				}
			}
			// LoadOrCreate must never overwrite a malformed file.
			if !tt.ok {
				if _, _, err := atrest.LoadOrCreate(path); err == nil {
					t.Errorf("LoadOrCreate accepted a malformed file")
				}
				if got, _ := os.ReadFile(path); string(got) != tt.text {
					t.Errorf("LoadOrCreate changed a malformed key file")
				}
			}
		})
	}
}
