package officer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/postgres"
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
//
// With a postgres:// URL the store is shared by every node: the key file
// must be the same on each (a server creates one only for a database that
// holds no store yet), the server creates the schema only in an empty
// database, and a schema older than this build is refused until `tes
// migrate` has upgraded it.
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
	switch {
	case c.Create && c.KeyFile == "" && postgres.IsURL(c.DB):
		// Every node of a PostgreSQL deployment shares one at-rest key.
		// Only the node that creates the store creates the key; a node
		// joining an existing store must be given the first one's.
		keys, err = atrest.Load(keyFile)
		if errors.Is(err, fs.ErrNotExist) {
			fresh, perr := postgres.IsNew(ctx, c.DB)
			if perr != nil {
				return nil, perr
			}
			if !fresh {
				return nil, fmt.Errorf("store key: %s does not exist and the PostgreSQL database already holds a TES store: copy store.key from the node that created it (every node shares one at-rest key and one TES/1 server key; see docs/deploy-multinode.md)", keyFile)
			}
			keys, _, err = atrest.LoadOrCreate(keyFile)
		}
	case c.Create && c.KeyFile == "":
		keys, _, err = atrest.LoadOrCreate(keyFile)
	default:
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
	case postgres.IsURL(c.DB):
		// The server creates the schema in an empty database; it never
		// upgrades a shared schema on its own: `tes migrate` does, once,
		// before the nodes are restarted on a new version.
		mode := postgres.MigrateNone
		if c.Create {
			mode = postgres.MigrateEmpty
		}
		db, err := postgres.OpenOptions(ctx, c.DB, keys, postgres.Options{Migrate: mode})
		if err != nil {
			return nil, err
		}
		return db, nil
	}
	return nil, fmt.Errorf("unknown --db %q: use sqlite:PATH or postgres://...", c.DB)
}
