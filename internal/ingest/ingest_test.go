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
	gate    chan struct{}
}

func (f *fakeStore) Ingest(ctx context.Context, items []*tes.IngestItem) error {
	if f.gate != nil {
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
	fs := &fakeStore{gate: make(chan struct{})}
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
	fs.gate <- struct{}{} // the committer is inside Ingest with the first item
	for range 119 {
		wg.Add(1)
		go submit()
	}
	time.Sleep(200 * time.Millisecond) // let the 119 reach the queue
	close(fs.gate)
	wg.Wait()
	total, maxBatch := 0, 0
	for _, n := range fs.batches {
		total += n
		maxBatch = max(maxBatch, n)
	}
	if total != 120 || maxBatch != 50 {
		t.Fatalf("batches %v: total %d (want 120), largest %d (want 50)", fs.batches, total, maxBatch)
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

// deferredStore commits at once and makes batches durable only when the
// test releases them, recording what happened in order.
type deferredStore struct {
	tes.ViolationStore
	mu      sync.Mutex
	events  []string
	items   int
	release chan error // one value per durable call
	inFsync chan struct{}
}

func (d *deferredStore) Ingest(context.Context, []*tes.IngestItem) error {
	panic("the batcher must use IngestDeferred")
}

func (d *deferredStore) IngestDeferred(_ context.Context, items []*tes.IngestItem) (func() error, error) {
	d.mu.Lock()
	d.items += len(items)
	d.events = append(d.events, fmt.Sprintf("commit (%d items so far)", d.items))
	d.mu.Unlock()
	for _, it := range items {
		it.Outcome = tes.OutcomeStored
	}
	return func() error {
		d.inFsync <- struct{}{}
		err := <-d.release
		d.mu.Lock()
		d.events = append(d.events, fmt.Sprintf("durable: %v", err))
		d.mu.Unlock()
		return err
	}, nil
}

// TestDeferredDurability: with a store that commits and makes durable in
// two steps, a report is acknowledged only after the fsync that covers it,
// the next batch commits while that fsync runs, and an fsync failure is an
// ERROR for every report it was to cover.
func TestDeferredDurability(t *testing.T) {
	d := &deferredStore{release: make(chan error), inFsync: make(chan struct{}, 1)}
	b := ingest.New(d, quiet, 0, nil)
	defer b.Close()
	ctx := context.Background()

	acked := make(chan string, 3)
	wait := func(name string, tk *ingest.Ticket) {
		go func() {
			if err := tk.Wait(ctx); err != nil {
				acked <- name + ": " + err.Error()
			} else {
				acked <- name
			}
		}()
	}
	first, err := b.Enqueue(ctx, &tes.IngestItem{})
	if err != nil {
		t.Fatal(err)
	}
	wait("first", first)
	<-d.inFsync // the first batch committed; its fsync is running
	for _, name := range []string{"second", "third"} {
		tk, err := b.Enqueue(ctx, &tes.IngestItem{})
		if err != nil {
			t.Fatal(err)
		}
		wait(name, tk)
	}
	// The later reports commit while the first fsync runs.
	waitFor(t, func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.items == 3 })
	select {
	case a := <-acked:
		t.Fatalf("%s acknowledged before any fsync finished", a)
	case <-time.After(50 * time.Millisecond):
	}
	d.release <- nil // the first batch is durable
	if a := <-acked; a != "first" {
		t.Fatalf("after the first fsync: %s, want first", a)
	}
	select {
	case a := <-acked:
		t.Fatalf("%s acknowledged before an fsync that covers it", a)
	case <-time.After(50 * time.Millisecond):
	}
	// Every fsync from now on fails: the reports it was to cover get an
	// error, never an acknowledgement.
	go func() {
		for range d.inFsync {
			d.release <- errors.New("EIO")
		}
	}()
	for range 2 {
		if a := <-acked; !strings.Contains(a, "could not be stored") {
			t.Fatalf("after a failed fsync: %q, want an error", a)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events[0] != "commit (1 items so far)" || d.events[1] == "durable: <nil>" {
		t.Fatalf("the next commit did not overlap the first fsync:\n%s", strings.Join(d.events, "\n"))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5 s")
}
