// Package ingest is the group-commit path between the protocol servers and
// the store: concurrent connections hand their reports to one committer,
// which writes whatever has queued up while the previous commit was on disk
// as one transaction. Under light load a batch is one report and the
// latency is one commit; under heavy load batches grow, so the cost of a
// durable commit (an fsync) is shared by many reports.
//
// Submit returns only after the item's transaction has committed, so a
// caller that acknowledges after Submit never acknowledges a report that a
// crash could lose. Enqueue and Ticket.Wait split Submit in two, so that a
// connection whose client sends several reports without waiting (a
// pipelining client) queues them all into the same commit and acknowledges
// each after it.
//
// Session claims (the replay guard of each TES/1 session key) come one per
// session, each after an RSA decrypt of about a millisecond, so the natural
// batch is one claim and every session paid a commit and its sync. The
// TES/1 server announces a claim when its decrypt begins (ClaimComing);
// a batch of claims alone waits for the announced ones, at most
// ClaimLinger, and a report never waits.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tes-traffic/tes"
)

// DefaultMaxBatch bounds one transaction.
const DefaultMaxBatch = 1000

// DefaultOverlap is how many items must be waiting before a batch commits
// while the previous batch's fsync still runs (with a Deferred store).
// Fewer wait for that fsync to end and join the batch after it. Without
// this bound, a server whose clients each wait for their reply (one report
// in flight per connection) committed a few reports during every fsync:
// more and smaller commits, each writing the pages every commit dirties
// (the audit chain's, the counters', the table's last page) to the WAL
// again, which cost 10-20% more CPU per report and 5-11% of the rate.
const DefaultOverlap = 64

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
	linger   time.Duration // most a batch of claims waits for announced ones
	overlap  int           // items needed to commit during an fsync (DefaultOverlap)

	syncing atomic.Int64  // batches committed, not yet durable (Deferred stores)
	synced  chan struct{} // a token after each fsync
	filled  chan struct{} // a token when overlap items wait during an fsync
	held    atomic.Int64  // items the committer holds while it waits for an fsync

	coming atomic.Int64  // session claims announced by ClaimComing, not yet queued
	wake   chan struct{} // a token when coming drops to 0

	ch     chan *Ticket
	mu     sync.RWMutex // guards closed against Submit racing Close
	closed bool
	done   chan struct{}
	pool   sync.Pool
}

// Ticket is an item queued by Enqueue; Wait returns its commit's result.
type Ticket struct {
	b    *Batcher
	item *tes.IngestItem
	err  error
	done chan struct{}
}

// New starts a batcher with one committer goroutine. maxBatch <= 0 means
// DefaultMaxBatch.
func New(store tes.ViolationStore, log *slog.Logger, maxBatch int, obs Observer) *Batcher {
	return newBatcher(store, log, maxBatch, obs, ClaimLinger, DefaultOverlap)
}

func newBatcher(store tes.ViolationStore, log *slog.Logger, maxBatch int, obs Observer, linger time.Duration, overlap int) *Batcher {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	b := &Batcher{store: store, log: log, maxBatch: maxBatch, obs: obs, linger: linger, overlap: overlap,
		wake: make(chan struct{}, 1), synced: make(chan struct{}, 1), filled: make(chan struct{}, 1),
		ch: make(chan *Ticket, 4*maxBatch), done: make(chan struct{})}
	b.pool.New = func() any { return &Ticket{b: b, done: make(chan struct{}, 1)} }
	go b.run()
	return b
}

// Submit queues item and waits until its transaction committed (nil, with
// item.Outcome set) or failed (an EUNAVAILABLE error). If ctx ends first,
// Submit returns ctx's error and the item may still be committed later;
// the caller must then not acknowledge it.
func (b *Batcher) Submit(ctx context.Context, item *tes.IngestItem) error {
	t, err := b.Enqueue(ctx, item)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// Enqueue queues item for the next commit and returns at once (or when ctx
// ends, if the queue is full). The caller must call the ticket's Wait
// exactly once, and must not read item until Wait has returned.
func (b *Batcher) Enqueue(ctx context.Context, item *tes.IngestItem) (*Ticket, error) {
	t := b.pool.Get().(*Ticket)
	t.item, t.err = item, nil
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.pool.Put(t)
		return nil, ErrClosed
	}
	select {
	case b.ch <- t:
		if b.syncing.Load() > 0 && len(b.ch)+int(b.held.Load()) >= b.overlap {
			select {
			case b.filled <- struct{}{}:
			default:
			}
		}
		return t, nil
	case <-ctx.Done():
		b.pool.Put(t)
		return nil, ctx.Err()
	}
}

// Wait blocks until t's transaction committed (nil, with the item's Outcome
// set) or failed (an EUNAVAILABLE error), or until ctx ends: then it returns
// ctx's error and the item may still be committed later, so the caller must
// not acknowledge it.
func (t *Ticket) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		err := t.err
		t.item = nil
		t.b.pool.Put(t)
		return err
	case <-ctx.Done():
		return ctx.Err() // t is still owned by the committer; not reused
	}
}

// ClaimLinger bounds how long a batch of session claims alone waits for
// the claims ClaimComing announced.
const ClaimLinger = 5 * time.Millisecond

// ClaimComing announces a TES/1 session claim: the connection has begun
// the RSA decrypt that comes before it. While claims are announced, a
// batch holding only claims waits for them (at most ClaimLinger), so that
// one commit and its sync serve several sessions instead of one each; a
// report ends the wait at once, and nothing waits when no claim is
// announced. The caller must call arrived exactly once: right after it
// has queued the claim (Enqueue), or when it gives the claim up.
func (b *Batcher) ClaimComing() (arrived func()) {
	b.coming.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			if b.coming.Add(-1) == 0 {
				select {
				case b.wake <- struct{}{}:
				default:
				}
			}
		})
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

// Deferred is a store that commits a batch in one step and makes it
// durable in a second (internal/sqlite). The batcher then acknowledges a
// batch from another goroutine once its durable returned, and can commit
// the next batch meanwhile; one durable covers every commit before it.
type Deferred interface {
	IngestDeferred(ctx context.Context, items []*tes.IngestItem) (durable func() error, err error)
}

// committed is a batch whose transaction has committed and which waits to
// be made durable and acknowledged.
type committed struct {
	batch   []*Ticket
	durable func() error
	start   time.Time
}

func (b *Batcher) run() {
	defer close(b.done)
	deferred, _ := b.store.(Deferred)
	var toAck chan committed
	if deferred != nil {
		toAck = make(chan committed, 1)
		ackerDone := make(chan struct{})
		go b.acker(toAck, ackerDone)
		defer func() { close(toAck); <-ackerDone }()
	}
	items := make([]*tes.IngestItem, 0, b.maxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		r, ok := <-b.ch
		if !ok {
			return
		}
		// A new slice each time: with a Deferred store the acker still
		// holds the previous batch.
		batch := b.drain(append(make([]*Ticket, 0, 64), r))
		if b.linger > 0 && b.coming.Load() > 0 && onlyClaims(batch) {
			linger.Reset(b.linger)
		wait:
			for len(batch) < b.maxBatch && b.coming.Load() > 0 {
				select {
				case r, ok := <-b.ch:
					if !ok {
						break wait
					}
					batch = append(batch, r)
					if r.item.Report != nil {
						break wait
					}
				case <-b.wake: // the last announced claim is queued
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
			batch = b.drain(batch)
		}
		if deferred != nil && len(batch) < b.overlap && b.syncing.Load() > 0 {
			batch = b.awaitSync(batch)
		}
		items = items[:0]
		for _, r := range batch {
			items = append(items, r.item)
		}
		start := time.Now()
		if deferred == nil {
			b.finish(batch, start, b.commit(items, func(ctx context.Context) error {
				return b.store.Ingest(ctx, items)
			}))
			continue
		}
		var durable func() error
		err := b.commit(items, func(ctx context.Context) (err error) {
			durable, err = deferred.IngestDeferred(ctx, items)
			return err
		})
		if err != nil {
			b.finish(batch, start, err)
			continue
		}
		b.syncing.Add(1)
		toAck <- committed{batch: batch, durable: durable, start: start}
	}
}

// awaitSync holds a batch of fewer than overlap items back while an earlier
// batch's fsync runs (see DefaultOverlap): it returns when no fsync is
// pending any more or overlap items wait, with what is queued then. It
// does not take items as they come: at one report in flight per client,
// that woke the committer for every report, which cost CPU the synchronous
// writer did not spend (it slept in the fsync). Enqueue tells it instead
// when the queue reaches overlap.
func (b *Batcher) awaitSync(batch []*Ticket) []*Ticket {
	b.held.Store(int64(len(batch)))
	defer b.held.Store(0)
	for len(batch)+len(b.ch) < b.overlap && b.syncing.Load() > 0 {
		select {
		case <-b.synced: // re-check: the token may be an earlier fsync's
		case <-b.filled:
		}
	}
	return b.drain(batch)
}

// acker makes committed batches durable and acknowledges them, in order.
// Batches that queued up while an fsync ran share the next one: each
// durable makes every commit before it durable, so only the last batch's
// is called.
func (b *Batcher) acker(in <-chan committed, done chan<- struct{}) {
	defer close(done)
	var group []committed
	for c := range in {
		group = append(group[:0], c)
	more:
		for {
			select {
			case c, ok := <-in:
				if !ok {
					break more
				}
				group = append(group, c)
			default:
				break more
			}
		}
		var err error
		if err = group[len(group)-1].durable(); err != nil {
			b.log.Error("ingest commit not durable", "batches", len(group), "err", err)
			err = &tes.Error{Code: tes.EUNAVAILABLE, Message: "The report could not be stored; retry.", Err: err}
		}
		for _, c := range group {
			b.finish(c.batch, c.start, err)
		}
		b.syncing.Add(-int64(len(group)))
		select {
		case b.synced <- struct{}{}:
		default:
		}
	}
}

// finish reports a batch's result to the observer and to every waiting
// ticket.
func (b *Batcher) finish(batch []*Ticket, start time.Time, err error) {
	if b.obs != nil {
		b.obs.Committed(len(batch), time.Since(start), err)
	}
	for _, r := range batch {
		r.err = err
		r.done <- struct{}{}
	}
}

// drain appends to batch what is queued, up to maxBatch, without waiting.
func (b *Batcher) drain(batch []*Ticket) []*Ticket {
	for len(batch) < b.maxBatch {
		select {
		case r, ok := <-b.ch:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// onlyClaims reports whether every item of batch is a session claim.
func onlyClaims(batch []*Ticket) bool {
	for _, r := range batch {
		if r.item.Report != nil {
			return false
		}
	}
	return true
}

// commit runs one batch's commit step; a failure is retried once, then
// reported to every item as EUNAVAILABLE (never acknowledged).
func (b *Batcher) commit(items []*tes.IngestItem, step func(ctx context.Context) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = step(ctx)
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
