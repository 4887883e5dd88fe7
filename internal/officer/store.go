package officer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/sqlite"
)

// StoreKeyFile is the at-rest master key's file name in the data directory.
const StoreKeyFile = "store.key"

// StoreConfig says where the store lives. Every command that opens the store
// takes the same three settings as the server.
type StoreConfig struct {
	DataDir string // holds tes.db and, by default, the key files
	DB      string // "" or "sqlite:PATH" for SQLite; postgres://... for PostgreSQL
	KeyFile string // at-rest key; default DATA/store.key (TES_STORE_KEY_FILE)
	Create  bool   // create the data directory and key when missing (the server); commands only open
}

// OpenStore opens the configured store and its at-rest keys.
func OpenStore(ctx context.Context, c StoreConfig) (tes.Store, error) {
	if c.DataDir == "" {
		return nil, fmt.Errorf("no data directory: pass --data DIR or set TES_DATA")
	}
	if c.Create {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	} else if _, err := os.Stat(c.DataDir); err != nil {
		return nil, fmt.Errorf("data directory %s: %w (start `tes officer --data %s` once to create it)", c.DataDir, err, c.DataDir)
	}
	keyFile := c.KeyFile
	if keyFile == "" {
		keyFile = filepath.Join(c.DataDir, StoreKeyFile)
	}
	var keys *atrest.Keys
	var err error
	if c.Create && c.KeyFile == "" {
		keys, _, err = atrest.LoadOrCreate(keyFile)
	} else {
		keys, err = atrest.Load(keyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	switch {
	case c.DB == "" || strings.HasPrefix(c.DB, "sqlite:"):
		path := strings.TrimPrefix(c.DB, "sqlite:")
		if path == "" {
			path = filepath.Join(c.DataDir, "tes.db")
		} else if !c.Create {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("database %s: %w", path, err)
			}
		}
		if !c.Create {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("no database at %s: start `tes officer --data %s` once to create it", path, c.DataDir)
			}
		}
		return sqlite.Open(ctx, path, keys)
	case strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://"):
		return nil, fmt.Errorf("PostgreSQL is not supported by this build yet; use SQLite (omit --db)")
	}
	return nil, fmt.Errorf("unknown --db %q: use sqlite:PATH or postgres://...", c.DB)
}
