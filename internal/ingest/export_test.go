package ingest

import (
	"log/slog"
	"time"

	"github.com/tes-traffic/tes"
)

// NewWithLinger is New with another ClaimLinger.
func NewWithLinger(store tes.ViolationStore, log *slog.Logger, linger time.Duration) *Batcher {
	return newBatcher(store, log, 0, nil, linger, DefaultOverlap)
}

// NewWithOverlap is New with another overlap (DefaultOverlap).
func NewWithOverlap(store tes.ViolationStore, log *slog.Logger, overlap int) *Batcher {
	return newBatcher(store, log, 0, nil, ClaimLinger, overlap)
}

// Queued is how many items wait in b's queue for the committer.
func Queued(b *Batcher) int { return len(b.ch) }
