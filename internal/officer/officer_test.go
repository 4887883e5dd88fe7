package officer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

// diskFailingStore is the server's real store with a DiskFailed the test
// closes, as SQLite closes it after a failed fsync.
type diskFailingStore struct {
	tes.Store
	down chan struct{}
}

func (d diskFailingStore) DiskFailed() <-chan struct{} { return d.down }

// TestRunStopsWhenTheDiskFails: when the store can no longer make writes
// durable, Run shuts the server down and returns an error that says why,
// so the process exits non-zero and its supervisor restarts it (SQLite then
// recovers from what is on disk).
func TestRunStopsWhenTheDiskFails(t *testing.T) {
	s, err := Open(context.Background(), Config{
		Store:  StoreConfig{DataDir: t.TempDir()},
		Listen: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	if diskFailed(s.Store) == nil {
		t.Fatal("the SQLite store has no DiskFailed")
	}
	down := make(chan struct{})
	s.Store = diskFailingStore{Store: s.Store, down: down}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	select {
	case err := <-done:
		t.Fatalf("Run returned before the disk failed: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(down)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "could not be written to disk") {
			t.Fatalf("Run after the disk failed = %v, want the disk error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop within 30s of the disk failing")
	}
}
