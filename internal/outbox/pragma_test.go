package outbox

import (
	"context"
	"path/filepath"
	"testing"
)

// TestPragmas checks what makes Enqueue durable on return: WAL with
// synchronous=FULL (an fsync of the WAL at every commit) on the connection
// that writes.
func TestPragmas(t *testing.T) {
	ctx := context.Background()
	ob, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var mode string
	var sync int
	if err := ob.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := ob.db.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		t.Fatalf("journal_mode=%s synchronous=%d: want wal and 2 (FULL)", mode, sync)
	}
	var check string
	if err := ob.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check: %q %v", check, err)
	}
}
