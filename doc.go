// Package tes is the domain of the Traffic Enforcement System: violations,
// driver records, users, penalty rules and the coded errors they return.
//
// It imports nothing but the standard library and knows nothing of storage or
// transport. The wire protocols (internal/tes1, internal/tlssuite), the stores
// (internal/sqlite, internal/postgres) and the web UIs (internal/officerui,
// internal/policeui) depend on it; it depends on none of them.
package tes
