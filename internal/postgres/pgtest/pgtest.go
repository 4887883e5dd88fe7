// Package pgtest gives tests their own PostgreSQL database on the server
// named by TES_TEST_POSTGRES_URL, and drops it when they end.
//
// The rules every PostgreSQL test follows: with TES_TEST_POSTGRES_URL set,
// an unreachable server fails the test (it never skips); unset, the test is
// skipped with a message, unless CI is set, when it fails saying that the
// variable must be set (.ci/run sets it to this machine's server).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the environment variable naming the test server.
const EnvURL = "TES_TEST_POSTGRES_URL"

// ServerURL returns the URL of the test server from TES_TEST_POSTGRES_URL,
// skipping the test when it is unset outside CI and failing it in CI.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s must be set in CI (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable; .ci/run sets it): the PostgreSQL tests cannot run", EnvURL)
		}
		t.Skipf("%s is not set: skipping the PostgreSQL tests (set it to e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", EnvURL)
	}
	return u
}

func randomName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// withPath returns u with its database (the URL path) replaced by db.
func withPath(t testing.TB, u, db string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s is not a URL: %v", EnvURL, err)
	}
	pu.Path = "/" + db
	return pu.String()
}

// WithParam returns u with the query parameter key set to value.
func WithParam(t testing.TB, u, key, value string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	q.Set(key, value)
	pu.RawQuery = q.Encode()
	return pu.String()
}

func mustConnect(t testing.TB, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("PostgreSQL at %s (%s) is unreachable: %v", redact(u), EnvURL, err)
	}
	return c
}

func redact(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return pu.Redacted()
}

// NewDatabase creates a database with a random name on the test server and
// returns its URL; the database is dropped (connections closed) when the
// test and its subtests end.
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := ServerURL(t)
	name := randomName("tes_test_")
	c := mustConnect(t, server)
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		c := mustConnect(t, server)
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return withPath(t, server, name)
}

// NewSchema creates a schema with a random name in the database at dbURL
// and returns a URL whose connections use it (search_path), so that many
// isolated stores share one database. The schema goes with the database.
func NewSchema(t testing.TB, dbURL string) string {
	t.Helper()
	name := randomName("s_")
	c := mustConnect(t, dbURL)
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	return WithParam(t, dbURL, "search_path", name)
}

// Exec runs statements on the database at u outside any store, for tests
// that check what the schema refuses; it returns the first error.
func Exec(t testing.TB, u string, sql ...string) error {
	t.Helper()
	c := mustConnect(t, u)
	defer c.Close(context.Background())
	for _, s := range sql {
		if _, err := c.Exec(context.Background(), s); err != nil {
			return err
		}
	}
	return nil
}

// Quote is a tiny helper for test SQL: s as a string literal.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
