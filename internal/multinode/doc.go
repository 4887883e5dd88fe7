// Package multinode holds the process-level tests of TES on several
// officer nodes: real `tes officer` processes sharing one PostgreSQL
// database (TES_TEST_POSTGRES_URL; see internal/postgres/pgtest), real
// TES/1 clients spread over them, and the CLI (`tes approve`, `tes audit
// verify`, `tes store copy`) run against the shared store. The package
// has no code of its own; docs/deploy-multinode.md describes the
// deployment these tests stand for.
package multinode
