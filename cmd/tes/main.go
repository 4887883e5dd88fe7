// Command tes is the Traffic Enforcement System: the officer server, the
// reporting client, and the administration commands, in one binary.
//
// Run `tes help` for the list of commands and `tes COMMAND --help` for each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tes-traffic/tes"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"officer", "run the officer server (TES/1 on :9999, TLS suite on :9443, dashboard on :5001)", runOfficer},
		{"demo", "run the officer server with demo accounts in ./tes-demo", runDemo},
		{"report", "send violation reports to an officer server", runReport},
		{"police", "run the police web client (report form on :5000, store-and-forward)", runPolice},
		{"violations", "list the violations in the store", runViolations},
		{"approve", "approve a pending violation and apply its points", runApprove},
		{"reject", "reject a pending violation with a reason", runReject},
		{"user", "manage accounts: add, passwd, list, disable, enable, role", runUser},
		{"status", "show the server's key, counts, uptime and recent events", runStatus},
		{"pins", "list or forget pinned server keys: pins list|forget", runPins},
		{"device", "enrol devices for the TLS suite: device add|list|revoke|ca", runDevice},
		{"evidence", "export a violation's sealed evidence file, or verify one offline", runEvidence},
		{"audit", "verify the audit log's hash chain and signed checkpoints", runAudit},
		{"bench", "load-test a running officer server: reports/s or sessions/s, latency, CPU per operation", runBench},
		{"migrate", "upgrade the store's schema (PostgreSQL: once, before restarting the nodes on a new tes)", runMigrate},
		{"store", "move a store: store copy --from sqlite:PATH --to postgres://...", runStore},
	}
}

// Env is what a command gets from main: streams and the environment, so
// that tests can run commands in-process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

func main() {
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, env, os.Args[1:]))
}

// Main runs one command and returns the exit code.
func Main(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			if err == nil {
				return 0
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			var ee exitError
			if errors.As(err, &ee) {
				if ee.msg != "" {
					fmt.Fprintln(env.Stderr, "tes "+c.name+": "+ee.msg)
				}
				return ee.code
			}
			fmt.Fprintf(env.Stderr, "tes %s: %s\n", c.name, userMessage(err))
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "tes: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

// exitError ends a command with a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// userMessage is what a person sees for err: the domain message for coded
// errors, the error text otherwise.
func userMessage(err error) string {
	var te *tes.Error
	if errors.As(err, &te) && te.Code != tes.EINTERNAL {
		return te.Message
	}
	return err.Error()
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tes: the Traffic Enforcement System\n\nUsage: tes COMMAND [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `tes COMMAND --help` for a command's flags.")
}

// newFlags returns a FlagSet that prints usage to env.Stderr and returns errors.
func newFlags(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("tes "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: tes %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// envOr returns the environment variable's value or def.
func envOr(env *Env, key, def string) string {
	if v := env.Getenv(key); v != "" {
		return v
	}
	return def
}

// newLogger builds the process logger: text for people, JSON for machines.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
