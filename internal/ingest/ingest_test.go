package ingest_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
