package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/evidence"
)

const evidenceSynopsis = `export ID [--out FILE] [--data DIR] | verify --file FILE [--ca-hash sha256:HEX]`

// runEvidence exports a violation's sealed evidence file, or verifies one
// with nothing but the file.
func runEvidence(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "Usage: tes evidence "+evidenceSynopsis)
		if len(args) == 0 {
			return exitError{2, ""}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fset := newFlags(env, "evidence "+sub, evidenceSynopsis)
	switch sub {
	case "export":
		sc := storeFlags(fset, env)
		out := fset.String("out", "", "write the file here (default violation-ID-evidence.json; - for standard output)")
		var idArg string
		if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
			idArg, args = args[0], args[1:]
		}
		if err := fset.Parse(args); err != nil {
			return err
		}
		if idArg == "" && fset.NArg() > 0 {
			idArg = fset.Arg(0)
		}
		id, err := strconv.ParseInt(idArg, 10, 64)
		if err != nil || id <= 0 {
			return exitError{2, "give the violation's ID (see tes violations)"}
		}
		root, err := ca.LoadCert(sc.DataDir)
		if err != nil {
			return fmt.Errorf("no CA in %s (start `tes officer --data %s` once to create it): %w", sc.DataDir, sc.DataDir, err)
		}
		signer, err := ca.LoadSigner(sc.DataDir)
		if err != nil {
			return fmt.Errorf("no officer signing key in %s: %w", sc.DataDir, err)
		}
		store, err := openStoreCmd(ctx, sc)
		if err != nil {
			return err
		}
		defer store.Close()
		b, err := (&evidence.Exporter{Violations: store, CA: root, Signer: signer}).Export(ctx, id)
		if err != nil {
			return err
		}
		path := *out
		if path == "" {
			path = fmt.Sprintf("violation-%d-evidence.json", id)
		}
		if path == "-" {
			_, err = env.Stdout.Write(b)
			return err
		}
		// The file holds a plate and a location: readable by the owner only,
		// and an existing file is never overwritten.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: choose another --out", path)
		} else if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Wrote the evidence of violation %d to %s (%d bytes).\nCheck it anywhere with: tes evidence verify --file %s\n", id, path, len(b), path)
		return nil
	case "verify":
		file := fset.String("file", "", "the evidence file to verify")
		caHash := fset.String("ca-hash", "", "require this CA hash (sha256:...), as the officer publishes it")
		if err := fset.Parse(args); err != nil {
			return err
		}
		if *file == "" {
			return exitError{2, "--file is required"}
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		res, err := evidence.Verify(b, evidence.VerifyOptions{CAHash: *caHash})
		if err != nil {
			var ve *evidence.VerifyError
			if errors.As(err, &ve) {
				fmt.Fprintf(env.Stdout, "FAILED: %s does not verify.\nField: %s\nProblem: %s\n", *file, ve.Field, ve.Why)
				return exitError{1, "verification failed at field " + ve.Field}
			}
			return err
		}
		w := env.Stdout
		fmt.Fprintf(w, "VERIFIED: %s, the evidence of violation %d (suite %s, %s), exported %s.\n", *file, res.ViolationID, res.Suite, res.Algorithm, res.ExportedAt.Format("2006-01-02 15:04:05 MST"))
		fmt.Fprintf(w, "Checked with nothing but this file: no database, no server, no network.\n\nProved:\n")
		for i, p := range res.Proved {
			fmt.Fprintf(w, "  %d. %s\n", i+1, p)
		}
		fmt.Fprintf(w, "\nNot proved:\n")
		for _, p := range res.NotProved {
			fmt.Fprintf(w, "  - %s\n", p)
		}
		return nil
	}
	return exitError{2, fmt.Sprintf("unknown subcommand %q: use %s", sub, evidenceSynopsis)}
}
