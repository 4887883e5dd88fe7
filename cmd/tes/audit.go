package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/audit"
	"github.com/tes-traffic/tes/internal/ca"
)

const auditSynopsis = `verify [--data DIR] [--trust-cert FILE] | checkpoint [--data DIR]`

// runAudit verifies the audit log or signs a checkpoint of it now.
func runAudit(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "Usage: tes audit "+auditSynopsis)
		if len(args) == 0 {
			return exitError{2, ""}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags(env, "audit "+sub, auditSynopsis)
	sc := storeFlags(fs, env)
	var trust []string
	if sub == "verify" {
		fs.Func("trust-cert", "also trust checkpoints signed by the officer signing certificate in this PEM file (another node's signing.pem); repeatable", func(s string) error {
			trust = append(trust, s)
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || sub != "verify" && sub != "checkpoint" {
		return exitError{2, "usage: tes audit " + auditSynopsis}
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	cs, ok := store.(tes.CheckpointStore)
	if !ok {
		return errors.New("this store keeps no audit checkpoints")
	}
	signer, signerErr := ca.LoadSigner(sc.DataDir)
	if sub == "checkpoint" {
		if signerErr != nil {
			return fmt.Errorf("no officer signing key in %s: %w", sc.DataDir, signerErr)
		}
		c, err := audit.Sign(ctx, cs, signer, 0, time.Now())
		if err != nil {
			return err
		}
		if c == nil {
			fmt.Fprintln(env.Stdout, "The audit log is empty: nothing to sign.")
			return nil
		}
		fmt.Fprintf(env.Stdout, "Signed checkpoint #%d of seq %d with %s.\n", c.ID, c.Seq, c.KeyFingerprint)
		return nil
	}
	var trusted []*x509.Certificate
	if signerErr == nil {
		trusted = append(trusted, signer.Cert)
	} else {
		fmt.Fprintf(env.Stderr, "Note: no officer signing key in %s (%v); only --trust-cert keys count.\n", sc.DataDir, signerErr)
	}
	for _, path := range trust {
		c, err := readCertPEM(path)
		if err != nil {
			return exitError{2, fmt.Sprintf("--trust-cert %s: %v", path, err)}
		}
		trusted = append(trusted, c)
	}
	res, err := audit.Verify(ctx, cs, trusted)
	if err != nil {
		return err
	}
	w := env.Stdout
	if !res.OK() {
		fmt.Fprintf(w, "FAILED: the audit log does not verify (%d entries read).\nFirst bad entry: seq %d\nWhat: %s\nDetail: %s\n", res.Events, res.Problem.Seq, res.Problem.Kind, res.Problem.Detail)
		return exitError{1, fmt.Sprintf("audit log broken at seq %d (%s)", res.Problem.Seq, res.Problem.Kind)}
	}
	if res.Events == 0 {
		fmt.Fprintln(w, "OK: the audit log is empty.")
		return nil
	}
	fmt.Fprintf(w, "OK: the audit log verifies: %d entries, seq 1 to %d, every hash recomputed and linked.\n", res.Events, res.LastSeq)
	fmt.Fprintf(w, "%d signed checkpoint(s) checked; the newest covers seq %d.\n", res.Checkpoints, res.LastCheckpointSeq)
	if res.Uncovered > 0 {
		fmt.Fprintf(w, "%d entr%s after seq %d %s consistent but not yet covered by a checkpoint (the officer signs one every minute and at shutdown; `tes audit checkpoint` signs one now).\n",
			res.Uncovered, plural(res.Uncovered, "y", "ies"), res.LastCheckpointSeq, plural(res.Uncovered, "is", "are"))
	}
	return nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// readCertPEM reads the first certificate in a PEM file.
func readCertPEM(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no CERTIFICATE block")
		}
		if strings.EqualFold(blk.Type, "CERTIFICATE") {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}
