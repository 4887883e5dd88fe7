package ingest

import (
	"log/slog"
	"time"

	"github.com/tes-traffic/tes"
)

// NewWithLinger is New with another ClaimLinger.
func NewWithLinger(store tes.ViolationStore, log *slog.Logger, linger time.Duration) *Batcher {
	return newBatcher(store, log, 0, nil, linger)
}
