package ingest_test

import (
	"context"
	"errors"
	"fmt"
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
