// Package ingest is the group-commit path between the protocol servers and
// the store: concurrent connections hand their reports to one committer,
// which writes whatever has queued up while the previous commit was on disk
// as one transaction. Under light load a batch is one report and the
// latency is one commit; under heavy load batches grow, so the cost of a
// durable commit (an fsync) is shared by many reports.
//
// Submit returns only after the item's transaction has committed, so a
// caller that acknowledges after Submit never acknowledges a report that a
// crash could lose.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/tes-traffic/tes"
)

// DefaultMaxBatch bounds one transaction.
const DefaultMaxBatch = 1000

// ErrClosed is returned by Submit after Close.
var ErrClosed = &tes.Error{Code: tes.EUNAVAILABLE, Message: "The server is shutting down."}

// Observer is told about every commit (for metrics); it may be nil.
type Observer interface {
	Committed(batch int, d time.Duration, err error)
}

// Batcher groups submitted items into transactions.
type Batcher struct {
	store    tes.ViolationStore
	log      *slog.Logger
	maxBatch int
	obs      Observer

	ch     chan *request
	mu     sync.RWMutex // guards closed against Submit racing Close
	closed bool
	done   chan struct{}
	pool   sync.Pool
}

type request struct {
	item *tes.IngestItem
	err  error
	done chan struct{}
}

// New starts a batcher with one committer goroutine. maxBatch <= 0 means
// DefaultMaxBatch.
func New(store tes.ViolationStore, log *slog.Logger, maxBatch int, obs Observer) *Batcher {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	b := &Batcher{store: store, log: log, maxBatch: maxBatch, obs: obs,
		ch: make(chan *request, 4*maxBatch), done: make(chan struct{})}
	b.pool.New = func() any { return &request{done: make(chan struct{}, 1)} }
	go b.run()
	return b
}

// Submit queues item and waits until its transaction committed (nil, with
// item.Outcome set) or failed (an EUNAVAILABLE error). If ctx ends first,
// Submit returns ctx's error and the item may still be committed later;
// the caller must then not acknowledge it.
func (b *Batcher) Submit(ctx context.Context, item *tes.IngestItem) error {
	r := b.pool.Get().(*request)
	r.item, r.err = item, nil
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		b.pool.Put(r)
		return ErrClosed
	}
	select {
	case b.ch <- r:
	case <-ctx.Done():
		b.mu.RUnlock()
		b.pool.Put(r)
		return ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case <-r.done:
		err := r.err
		r.item = nil
		b.pool.Put(r)
		return err
	case <-ctx.Done():
		return ctx.Err() // r is still owned by the committer; not reused
	}
}

// QueueLength is the number of items waiting for the next commit.
func (b *Batcher) QueueLength() int { return len(b.ch) }

// Close stops accepting items, commits everything already queued and
// returns when the committer has finished.
func (b *Batcher) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
	b.mu.Unlock()
	<-b.done
	return nil
}

func (b *Batcher) run() {
	defer close(b.done)
	batch := make([]*request, 0, b.maxBatch)
	items := make([]*tes.IngestItem, 0, b.maxBatch)
	for {
		r, ok := <-b.ch
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case r, ok := <-b.ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.item)
		}
		start := time.Now()
		err := b.commit(items)
		if b.obs != nil {
			b.obs.Committed(len(items), time.Since(start), err)
		}
		for _, r := range batch {
			r.err = err
			r.done <- struct{}{}
		}
	}
}

// commit writes one batch; a failure is retried once, then reported to
// every item as EUNAVAILABLE (never acknowledged).
func (b *Batcher) commit(items []*tes.IngestItem) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = b.store.Ingest(ctx, items)
		cancel()
		if err == nil {
			return nil
		}
		for _, it := range items {
			it.Outcome, it.ViolationID = tes.OutcomeNone, 0
		}
		b.log.Error("ingest commit failed", "batch", len(items), "attempt", attempt+1, "err", err)
		if errors.Is(err, context.Canceled) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &tes.Error{Code: tes.EUNAVAILABLE, Message: "The report could not be stored; retry.", Err: err}
}
