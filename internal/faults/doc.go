// Package faults holds the tests that break things on purpose: the officer
// server killed with SIGKILL mid-load, connections that never finish,
// garbage streams, floods, and a store that cannot commit. Each test checks
// the guarantee that matters afterwards: every acknowledged report is stored
// exactly once, and a legitimate client still gets through.
package faults
