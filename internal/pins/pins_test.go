package pins_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tes-traffic/tes/internal/pins"
)

func TestTrustOnFirstUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "known_servers")
	f := pins.Open(path)
	first, err := f.Check("a:9999", "SHA256:one")
	if err != nil || !first {
		t.Fatalf("first Check = %v, %v; want pinned", first, err)
	}
	if first, err := f.Check("a:9999", "SHA256:one"); err != nil || first {
		t.Fatalf("same key = %v, %v", first, err)
	}
	_, err = f.Check("a:9999", "SHA256:two")
	var ce *pins.ChangedError
	if !pins.IsChanged(err) || !strings.Contains(err.Error(), "SHA256:one") || !strings.Contains(err.Error(), "tes pins forget a:9999") {
		t.Fatalf("changed key = %v (%T %v)", err, err, ce)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("pins file mode %v", st.Mode().Perm())
	}
	if err := f.Forget("a:9999"); err != nil {
		t.Fatal(err)
	}
	if err := f.Forget("a:9999"); err == nil {
		t.Fatal("forgetting a missing pin succeeded")
	}
	if first, err := f.Check("a:9999", "SHA256:two"); err != nil || !first {
		t.Fatalf("after forget = %v, %v", first, err)
	}
}

func TestConcurrentPinning(t *testing.T) {
	f := pins.Open(filepath.Join(t.TempDir(), "known_servers"))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Check("s"+string(rune('a'+i))+":1", "SHA256:k"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	list, err := f.List()
	if err != nil || len(list) != 20 {
		t.Fatalf("List = %d pins, %v; want 20", len(list), err)
	}
}

func TestMalformedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_servers")
	os.WriteFile(path, []byte("a:1 not-a-fingerprint\n"), 0o600)
	if _, err := pins.Open(path).Check("a:1", "SHA256:x"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed file: %v", err)
	}
}
