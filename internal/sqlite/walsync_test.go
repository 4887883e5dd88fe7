package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestWALSyncer: sync follows the WAL file if it is replaced, many
// concurrent callers are served, and a failed fsync is final.
func TestWALSyncer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	if err := os.WriteFile(db+"-wal", []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWALSyncer(db)
	defer w.close()
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	ino := w.ino
	select {
	case <-w.down:
		t.Fatal("down is closed before any failure")
	default:
	}

	// Replaced (SQLite only does so after its last connection closed):
	// the next sync opens the new file.
	os.Remove(db + "-wal")
	if err := os.WriteFile(db+"-wal", []byte("new frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.sync(); err != nil || w.ino == ino {
		t.Fatalf("after the WAL was replaced: %v, inode %d (was %d)", err, w.ino, ino)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- w.sync() }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if w.synced != w.requested {
		t.Fatalf("synced up to call %d of %d", w.synced, w.requested)
	}

	// An fsync that fails (here: on a descriptor closed underneath) makes
	// every later sync fail, though the file is fine again.
	w.f.Close()
	if err := w.sync(); err == nil {
		t.Fatal("sync on a closed descriptor succeeded")
	}
	w.f = nil
	if err := w.sync(); err == nil || !strings.Contains(err.Error(), "restarts") {
		t.Fatalf("sync after a failed fsync = %v, want the same failure", err)
	}
	select {
	case <-w.down:
	default:
		t.Fatal("down is not closed after a failed fsync")
	}
}
