package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/postgres"
	"github.com/tes-traffic/tes/internal/sqlite"
	"github.com/tes-traffic/tes/internal/storecopy"
)

// runMigrate upgrades the store's schema and says from which version to
// which. On PostgreSQL it is the one way a shared schema is upgraded: the
// nodes refuse to start on an older schema, so that an upgrade is one
// deliberate step before a rolling restart. It needs no at-rest key there.
// On SQLite the server migrates its own file when it opens it; the command
// does the same and reports what it did.
func runMigrate(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "migrate", "[--db URL] [--data DIR]")
	sc := storeFlags(fs, env)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Sprintf("unexpected argument %q (see --help)", fs.Arg(0))}
	}
	if postgres.IsURL(sc.DB) {
		from, to, err := postgres.Migrate(ctx, sc.DB)
		if err != nil {
			return err
		}
		printMigrated(env, "PostgreSQL", from, to)
		return nil
	}
	path := strings.TrimPrefix(sc.DB, "sqlite:")
	if path == "" {
		path = filepath.Join(sc.DataDir, "tes.db")
	} else if !strings.HasPrefix(sc.DB, "sqlite:") {
		return exitError{2, fmt.Sprintf("unknown --db %q: use sqlite:PATH or postgres://...", sc.DB)}
	}
	from, err := sqlite.ReadSchemaVersion(ctx, path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no database at %s: start `tes officer --data %s` once to create it", path, sc.DataDir)
	} else if err != nil {
		return err
	}
	store, err := officer.OpenStore(ctx, *sc) // SQLite migrates as it opens
	if err != nil {
		return err
	}
	store.Close()
	printMigrated(env, "SQLite", from, sqlite.SchemaVersion())
	return nil
}

func printMigrated(env *Env, backend string, from, to int) {
	if from == to {
		fmt.Fprintf(env.Stdout, "The %s schema is at version %d, the newest this tes knows: nothing to do.\n", backend, to)
		return
	}
	fmt.Fprintf(env.Stdout, "Migrated the %s schema from version %d to %d.\n", backend, from, to)
}

const storeSynopsis = "copy --from sqlite:PATH --to postgres://... [--data DIR] [--batch N] [--no-sessions] [--compare]"

// runStore is `tes store copy`: move a single-machine install to
// PostgreSQL with nothing lost, verified at the end.
func runStore(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(env.Stderr, "Usage: tes store "+storeSynopsis)
			return nil
		}
		return exitError{2, "usage: tes store " + storeSynopsis}
	}
	fs := newFlags(env, "store copy", storeSynopsis[len("copy "):])
	dataDir := fs.String("data", envOr(env, "TES_DATA", "tes-data"), "data directory holding the store and its key (env TES_DATA)")
	keyFile := fs.String("store-key-file", env.Getenv("TES_STORE_KEY_FILE"), "at-rest key file (default DATA/store.key); the target is sealed with the same key (env TES_STORE_KEY_FILE)")
	from := fs.String("from", "", "the store to copy: sqlite:PATH (default sqlite:DATA/tes.db)")
	to := fs.String("to", "", "the new, empty PostgreSQL database: postgres://user@host:port/db?sslmode=...")
	batch := fs.Int("batch", 1000, "rows per transaction")
	noSessions := fs.Bool("no-sessions", false, "do not copy dashboard sign-ins (everyone signs in again); API tokens are always copied")
	compare := fs.Bool("compare", false, "after the copy, read every row of both stores again and compare them field by field (as long as the copy)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Sprintf("unexpected argument %q (see --help)", fs.Arg(0))}
	}
	src := *from
	if src == "" {
		src = "sqlite:" + filepath.Join(*dataDir, "tes.db")
	}
	path, ok := strings.CutPrefix(src, "sqlite:")
	if !ok || path == "" {
		return exitError{2, "--from must be sqlite:PATH: the copy goes from a single-machine SQLite store to PostgreSQL"}
	}
	if !postgres.IsURL(*to) {
		return exitError{2, "--to must be a postgres:// URL of a new, empty database"}
	}
	if *batch < 1 || *batch > 100000 {
		return exitError{2, "--batch must be 1 to 100000"}
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("the source %s: %w", path, err)
	}
	kf := *keyFile
	if kf == "" {
		kf = filepath.Join(*dataDir, officer.StoreKeyFile)
	}
	keys, err := atrest.Load(kf)
	if err != nil {
		return fmt.Errorf("store key: %w", err)
	}

	source, err := sqlite.Open(ctx, path, keys)
	if err != nil {
		return err
	}
	defer source.Close()
	// The target's schema is created if the database is empty; an older
	// one needs tes migrate first, as for a node.
	target, err := postgres.OpenOptions(ctx, *to, keys, postgres.Options{Migrate: postgres.MigrateEmpty})
	if err != nil {
		return err
	}
	defer target.Close()

	opt := storecopy.Options{BatchSize: *batch}
	if *noSessions {
		for _, t := range storecopy.Tables {
			if t != storecopy.TableWebSessions {
				opt.Tables = append(opt.Tables, t)
			}
		}
	}
	var last string
	opt.Progress = func(table string, n int64) {
		if table != last {
			last = table
			fmt.Fprintf(env.Stderr, "copying %s...\n", table)
		}
	}
	fmt.Fprintf(env.Stderr, "Copying %s to %s\n", path, target.Where())
	sum, err := storecopy.Copy(ctx, source, target, opt)
	if sum != nil {
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tSOURCE\tTARGET\t")
		for _, t := range sum.Tables {
			mark := "ok"
			if t.Source != t.Target {
				mark = "MISMATCH"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.Name, t.Source, t.Target, mark)
		}
		tw.Flush()
		if sum.Head != nil {
			fmt.Fprintf(env.Stdout, "Audit chain: %d events recomputed on the target, head %x.\n", sum.Events, sum.Head)
		}
	}
	if err != nil {
		if tes.ErrorCode(err) == tes.EINVALID {
			return err
		}
		return fmt.Errorf("store copy failed: %w", err)
	}
	if *compare {
		diffs, err := storecopy.Diff(ctx, source, target, opt.Tables, 20)
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		if len(diffs) > 0 {
			for _, d := range diffs {
				fmt.Fprintln(env.Stderr, d)
			}
			return fmt.Errorf("store copy failed: %d row(s) differ between the source and the copy", len(diffs))
		}
		fmt.Fprintln(env.Stdout, "Every row of every table compared equal.")
	}
	fmt.Fprintf(env.Stdout, "Copied and verified in %s. Start the nodes with --db %s (see docs/deploy-multinode.md).\n",
		sum.Duration.Round(1e6), redactURL(*to))
	return nil
}

// redactURL hides a password in a postgres:// URL for printing.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if name, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + name + ":xxxxx@" + host
	}
	return u
}
