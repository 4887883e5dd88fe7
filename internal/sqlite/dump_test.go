package sqlite_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/storecopy"
)

func TestReadSchemaVersion(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := sqlite.ReadSchemaVersion(ctx, filepath.Join(dir, "none.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := sqlite.ReadSchemaVersion(ctx, empty); err != nil || v != 0 {
		t.Errorf("empty file: %d, %v; want 0", v, err)
	}
	db := mustOpen(t)
	if v, err := sqlite.ReadSchemaVersion(ctx, db.Path()); err != nil || v != sqlite.SchemaVersion() {
		t.Errorf("migrated file: %d, %v; want %d", v, err, sqlite.SchemaVersion())
	}
}

func TestDump(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	for range 5 {
		mustIngest(t, db, item(report("AB-1", 90)))
	}
	counts, err := db.Counts(ctx)
	if err != nil || counts[storecopy.TableViolations] != 5 || counts[storecopy.TableAudit] != 5 || counts[storecopy.TableClientKeys] != 1 {
		t.Fatalf("Counts = %v, %v", counts, err)
	}
	var sizes []int
	err = db.Dump(ctx, []string{storecopy.TableViolations, storecopy.TableAudit}, 2, func(b *storecopy.Batch) error {
		sizes = append(sizes, b.Len())
		for _, v := range b.Violations {
			if v.Plate != "AB-1" || v.Location == "" {
				t.Errorf("violation %d not decrypted: %+v", v.ID, v)
			}
		}
		return nil
	})
	if err != nil || len(sizes) != 6 || sizes[0] != 2 || sizes[2] != 1 {
		t.Errorf("Dump in batches of 2: sizes %v, %v; want 2 2 1 2 2 1", sizes, err)
	}
	stop := errors.New("stop")
	if err := db.Dump(ctx, []string{storecopy.TableAudit}, 1, func(*storecopy.Batch) error { return stop }); err != stop {
		t.Errorf("Dump with a failing fn = %v, want its error", err)
	}
	if err := db.Dump(ctx, []string{"passwords"}, 1, func(*storecopy.Batch) error { return nil }); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("Dump of an unknown table = %v, want EINVALID", err)
	}
}
