package tes

import "time"

// ServerStatus is what the officer server tells about itself: the facts the
// original's status page showed and more.
type ServerStatus struct {
	StartedAt    time.Time
	Fingerprints []KeyFingerprint // the server's public identities
	Connections  int              // open protocol connections
	ReportsTotal int64            // acknowledged since start
	RefusedTotal int64            // refused since start
	PerMinute    []int            // reports acknowledged in each of the last minutes, oldest first
}

// KeyFingerprint names one of the server's keys.
type KeyFingerprint struct {
	Suite       string `json:"suite"`       // e.g. "TES/1 (RSA-2048)"
	Fingerprint string `json:"fingerprint"` // "SHA256:..."
}
