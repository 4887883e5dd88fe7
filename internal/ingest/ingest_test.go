package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ingest"
)

// fakeStore records batch sizes and can fail.
type fakeStore struct {
	tes.ViolationStore
	mu      sync.Mutex
	batches []int
	fail    atomic.Bool
	entered chan struct{} // with gate: told when a commit enters Ingest
	gate    chan struct{} // when set, every commit waits until it is closed
}

func (f *fakeStore) Ingest(ctx context.Context, items []*tes.IngestItem) error {
	if f.gate != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
		<-f.gate
	}
	if f.fail.Load() {
		return errors.New("disk full")
	}
	f.mu.Lock()
	f.batches = append(f.batches, len(items))
	f.mu.Unlock()
	for i, it := range items {
		it.Outcome, it.ViolationID = tes.OutcomeStored, int64(i+1)
	}
	return nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestBatchesGrowUnderLoad(t *testing.T) {
	fs := &fakeStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	b := ingest.New(fs, quiet, 50, nil)
	defer b.Close()
	var wg sync.WaitGroup
	submit := func() {
		defer wg.Done()
		it := &tes.IngestItem{Report: &tes.Report{}}
		if err := b.Submit(context.Background(), it); err != nil || it.Outcome != tes.OutcomeStored {
			t.Errorf("Submit = %v, outcome %v", err, it.Outcome)
		}
	}
	// The first commit blocks in the store; everything submitted meanwhile
	// queues and must go out in batches of at most 50.
	wg.Add(1)
	go submit()
	<-fs.entered // the committer is inside Ingest with the first item
	for range 119 {
		wg.Add(1)
		go submit()
	}
	for deadline := time.Now().Add(time.Minute); ingest.Queued(b) < 119; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(fs.gate)
			t.Fatalf("%d of 119 submissions queued after a minute", ingest.Queued(b))
		}
	}
	close(fs.gate)
	wg.Wait()
	if want := []int{1, 50, 50, 19}; fmt.Sprint(fs.batches) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v: the first alone, then the queue in batches of at most 50", fs.batches, want)
	}
}

func TestFailureIsNeverAnAcknowledgement(t *testing.T) {
	fs := &fakeStore{}
	fs.fail.Store(true)
	b := ingest.New(fs, quiet, 0, nil)
	defer b.Close()
	it := &tes.IngestItem{Report: &tes.Report{}}
	err := b.Submit(context.Background(), it)
	if tes.ErrorCode(err) != tes.EUNAVAILABLE || it.Outcome != tes.OutcomeNone {
		t.Fatalf("Submit on a failing store = %v, outcome %v; want EUNAVAILABLE and no outcome", err, it.Outcome)
	}
	fs.fail.Store(false) // the store comes back: the next submit works
	if err := b.Submit(context.Background(), it); err != nil || it.Outcome != tes.OutcomeStored {
		t.Fatalf("after recovery: %v, %v", err, it.Outcome)
	}
}

func TestCloseCommitsQueuedThenRefuses(t *testing.T) {
	fs := &fakeStore{}
	b := ingest.New(fs, quiet, 0, nil)
	it := &tes.IngestItem{Report: &tes.Report{}}
	if err := b.Submit(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Submit(context.Background(), &tes.IngestItem{}); err != ingest.ErrClosed {
		t.Fatalf("Submit after Close = %v, want ErrClosed", err)
	}
}

func (f *fakeStore) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batches...)
}

func claim() *tes.IngestItem { return &tes.IngestItem{SessionDigest: make([]byte, 32)} }

// waitDone fails the test if t's commit does not come back: the committer
// waited for something that was not going to come.
func waitDone(t *testing.T, what string, tk *ingest.Ticket) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tk.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not committed after 10 s", what)
	}
}

func enqueue(t *testing.T, b *ingest.Batcher, it *tes.IngestItem) *ingest.Ticket {
	t.Helper()
	tk, err := b.Enqueue(context.Background(), it)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// idle waits until the committer has taken everything queued.
func idle(b *ingest.Batcher) {
	for b.QueueLength() > 0 {
		time.Sleep(time.Millisecond)
	}
}

// TestClaimsWaitForAnnouncedClaims: a batch of session claims waits for the
// claims announced as coming, so one commit serves them all. The linger is
// an hour: only the announcements can end the wait.
func TestClaimsWaitForAnnouncedClaims(t *testing.T) {
	fs := &fakeStore{}
	b := ingest.NewWithLinger(fs, quiet, time.Hour)
	defer b.Close()
	stale := b.ClaimComing()
	stale()
	stale() // a second call changes nothing
	a1, a2, a3 := b.ClaimComing(), b.ClaimComing(), b.ClaimComing()
	t1 := enqueue(t, b, claim())
	a1()
	idle(b) // the committer holds claim 1, waiting for two more
	t2 := enqueue(t, b, claim())
	a2()
	t3 := enqueue(t, b, claim())
	a3()
	for i, tk := range []*ingest.Ticket{t1, t2, t3} {
		waitDone(t, fmt.Sprintf("claim %d", i+1), tk)
	}
	if got := fs.sizes(); len(got) != 1 || got[0] != 3 {
		t.Fatalf("batches %v, want one of 3", got)
	}
	// Nothing announced: a claim commits alone, at once.
	waitDone(t, "unannounced claim", enqueue(t, b, claim()))
}

// TestClaimWaitEnds: what else ends a batch of claims' wait.
func TestClaimWaitEnds(t *testing.T) {
	t.Run("a report", func(t *testing.T) {
		fs := &fakeStore{}
		b := ingest.NewWithLinger(fs, quiet, time.Hour)
		defer b.Close()
		a1, a2 := b.ClaimComing(), b.ClaimComing()
		defer a2()
		tc := enqueue(t, b, claim())
		a1()
		idle(b)
		tr := enqueue(t, b, &tes.IngestItem{Report: &tes.Report{}})
		waitDone(t, "report", tr)
		waitDone(t, "claim", tc)
		if got := fs.sizes(); len(got) != 1 || got[0] != 2 {
			t.Fatalf("batches %v, want the claim and the report in one", got)
		}
	})
	t.Run("a claim given up", func(t *testing.T) {
		fs := &fakeStore{}
		b := ingest.NewWithLinger(fs, quiet, time.Hour)
		defer b.Close()
		a1, a2 := b.ClaimComing(), b.ClaimComing()
		tc := enqueue(t, b, claim())
		a1()
		idle(b)
		a2() // its decrypt failed: no claim follows
		waitDone(t, "claim", tc)
	})
	t.Run("the linger", func(t *testing.T) {
		fs := &fakeStore{}
		b := ingest.NewWithLinger(fs, quiet, 20*time.Millisecond)
		defer b.Close()
		a1, never := b.ClaimComing(), b.ClaimComing()
		defer never()
		tc := enqueue(t, b, claim())
		a1()
		waitDone(t, "claim", tc)
	})
	t.Run("Close", func(t *testing.T) {
		fs := &fakeStore{}
		b := ingest.NewWithLinger(fs, quiet, time.Hour)
		a1, never := b.ClaimComing(), b.ClaimComing()
		defer never()
		tc := enqueue(t, b, claim())
		a1()
		idle(b)
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		waitDone(t, "claim", tc)
		<-closed
	})
}

// deferredStore commits at once and makes batches durable only when the
// test releases them, recording what happened in order.
type deferredStore struct {
	tes.ViolationStore
	mu      sync.Mutex
	events  []string
	items   int
	release chan error    // one value per durable call
	inFsync chan struct{} // told when a durable call begins
	stop    chan struct{} // closed when the test ends: every durable fails
}

// newDeferredBatcher returns a batcher with the given overlap over a new
// deferredStore. When the test ends, pending fsyncs fail and the batcher
// is closed, so that a failing test ends instead of hanging in Close.
func newDeferredBatcher(t *testing.T, overlap int) (*deferredStore, *ingest.Batcher) {
	d := &deferredStore{release: make(chan error), inFsync: make(chan struct{}, 1), stop: make(chan struct{})}
	b := ingest.NewWithOverlap(d, quiet, overlap)
	t.Cleanup(func() { b.Close() })
	t.Cleanup(func() { close(d.stop) }) // runs first
	return d, b
}

func (d *deferredStore) Ingest(context.Context, []*tes.IngestItem) error {
	panic("the batcher must use IngestDeferred")
}

func (d *deferredStore) IngestDeferred(_ context.Context, items []*tes.IngestItem) (func() error, error) {
	d.mu.Lock()
	d.items += len(items)
	d.events = append(d.events, fmt.Sprintf("commit %d (%d items so far)", len(items), d.items))
	d.mu.Unlock()
	for _, it := range items {
		it.Outcome = tes.OutcomeStored
	}
	return func() error {
		var err error
		select {
		case d.inFsync <- struct{}{}:
			select {
			case err = <-d.release:
			case <-d.stop:
				err = errors.New("test ended")
			}
		case <-d.stop:
			err = errors.New("test ended")
		}
		d.mu.Lock()
		d.events = append(d.events, fmt.Sprintf("durable: %v", err))
		d.mu.Unlock()
		return err
	}, nil
}

func (d *deferredStore) committed() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.items
}

// waitCommitted waits until n items have committed, failing after 10s.
func (d *deferredStore) waitCommitted(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); d.committed() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d items committed after 10s, want %d:\n%s", d.committed(), n, d.log())
		}
	}
}

func (d *deferredStore) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.events, "\n")
}

// enqueueAll queues n items named prefix1..prefixN and reports each one's
// result on acked as it comes: its name, or its name and error.
func enqueueAll(t *testing.T, b *ingest.Batcher, acked chan<- string, prefix string, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("%s%d", prefix, i+1)
		tk, err := b.Enqueue(context.Background(), &tes.IngestItem{})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if err := tk.Wait(context.Background()); err != nil {
				acked <- name + ": " + err.Error()
			} else {
				acked <- name
			}
		}()
	}
}

// noAck fails if anything is acknowledged within d.
func noAck(t *testing.T, acked <-chan string, d time.Duration, when string) {
	t.Helper()
	select {
	case a := <-acked:
		t.Fatalf("%s acknowledged %s", a, when)
	case <-time.After(d):
	}
}

// TestDeferredDurability: with a store that commits and makes durable in
// two steps, a report is acknowledged only after the fsync that covers it,
// the next batch commits while that fsync runs (here from its first item),
// one fsync covers every batch committed before it, and an fsync failure is
// an ERROR for every report it was to cover.
func TestDeferredDurability(t *testing.T) {
	d, b := newDeferredBatcher(t, 1)
	acked := make(chan string, 8)

	enqueueAll(t, b, acked, "first", 1)
	<-d.inFsync // the first batch committed; its fsync is running
	enqueueAll(t, b, acked, "second", 1)
	d.waitCommitted(t, 2) // it commits during the first fsync
	enqueueAll(t, b, acked, "third", 1)
	d.waitCommitted(t, 3)
	noAck(t, acked, 50*time.Millisecond, "before any fsync finished")
	d.release <- nil // the first batch is durable
	if a := <-acked; a != "first1" {
		t.Fatalf("after the first fsync: %s, want first1", a)
	}
	noAck(t, acked, 50*time.Millisecond, "before an fsync that covers it")

	// One fsync for the two batches committed meanwhile, and it fails:
	// both get an error, never an acknowledgement.
	<-d.inFsync
	d.release <- errors.New("EIO")
	for range 2 {
		if a := <-acked; !strings.Contains(a, "could not be stored") {
			t.Fatalf("after a failed fsync: %q, want an error", a)
		}
	}
	want := "commit 1 (1 items so far)\ncommit 1 (2 items so far)\ncommit 1 (3 items so far)\ndurable: <nil>\ndurable: EIO"
	if got := d.log(); got != want {
		t.Fatalf("events:\n%s\nwant:\n%s", got, want)
	}
}

// TestFewItemsWaitForTheFsync: while a batch's fsync runs, fewer items
// than the overlap wait for it and commit after it as one batch; as many as
// the overlap commit at once.
func TestFewItemsWaitForTheFsync(t *testing.T) {
	d, b := newDeferredBatcher(t, 3)
	acked := make(chan string, 16)

	enqueueAll(t, b, acked, "a", 1)
	<-d.inFsync
	enqueueAll(t, b, acked, "b", 2)
	time.Sleep(50 * time.Millisecond)
	if n := d.committed(); n != 1 {
		t.Fatalf("%d items committed while the fsync ran, want the first alone:\n%s", n, d.log())
	}
	enqueueAll(t, b, acked, "c", 1) // now three wait: they commit during the fsync
	d.waitCommitted(t, 4)
	d.release <- nil
	<-d.inFsync
	d.release <- nil
	for range 4 {
		if a := <-acked; strings.Contains(a, ":") {
			t.Fatal(a)
		}
	}

	// The store is idle: one item commits at once, and two that come
	// during its fsync wait for it.
	enqueueAll(t, b, acked, "d", 1)
	<-d.inFsync
	enqueueAll(t, b, acked, "e", 2)
	noAck(t, acked, 50*time.Millisecond, "before its fsync")
	d.release <- nil
	<-d.inFsync
	d.release <- nil
	for range 3 {
		<-acked
	}
	want := "commit 1 (1 items so far)\ncommit 3 (4 items so far)\ndurable: <nil>\ndurable: <nil>\n" +
		"commit 1 (5 items so far)\ndurable: <nil>\ncommit 2 (7 items so far)\ndurable: <nil>"
	if got := d.log(); got != want {
		t.Fatalf("events:\n%s\nwant:\n%s", got, want)
	}
}
