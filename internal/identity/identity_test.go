package identity_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/identity"
)

func TestLoadOrCreateRSA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", identity.TES1KeyFile)
	k1, created, err := identity.LoadOrCreateRSA(path)
	if err != nil || !created || k1.N.BitLen() != 2048 {
		t.Fatalf("create: %v created=%v", err, created)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, created, err := identity.LoadOrCreateRSA(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v created=%v same=%v", err, created, k1.Equal(k2))
	}
	os.Chmod(path, 0o644)
	if _, _, err := identity.LoadOrCreateRSA(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, _, err := identity.LoadOrCreateRSA(path); err == nil {
		t.Fatal("garbage key file accepted")
	}
}

func TestWriteSecretNeverReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	if err := identity.WriteSecret(path, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteSecret(path, []byte("two")); err == nil {
		t.Fatal("WriteSecret replaced an existing file")
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("content %q", b)
	}
}

func TestReplaceSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	for _, content := range []string{"one", "two"} {
		if err := identity.ReplaceSecret(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("content %q, want %q", b, content)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", st.Mode().Perm())
		}
	}
}
