package tes1

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats counts what a protocol server did; the TLS suite keeps the same
// counters (internal/tlssuite), so /metrics and the status page read both
// alike. Fields are updated with atomics on the hot path; readers take a
// snapshot.
type Stats struct {
	Conns          atomic.Int64 // open now
	ConnsTotal     atomic.Int64
	ConnsRefused   atomic.Int64 // over a connection limit
	Sessions       atomic.Int64 // SESSION accepted
	SessionsFailed atomic.Int64
	Logins         atomic.Int64
	LoginsFailed   atomic.Int64
	Accepted       atomic.Int64 // reports acknowledged (stored or duplicate)
	Duplicates     atomic.Int64 // acknowledged again, nothing stored

	refusedMu sync.Mutex
	refused   map[string]int64 // by reply text

	perMinute [60]minuteSlot
}

type minuteSlot struct {
	minute atomic.Int64
	n      atomic.Int64
}

// CountRefused counts a refused request under reason, which must come from a
// bounded set (a reply text, not a user's input): it is a metrics label.
func (s *Stats) CountRefused(reason string) {
	s.refusedMu.Lock()
	if s.refused == nil {
		s.refused = map[string]int64{}
	}
	s.refused[reason]++
	s.refusedMu.Unlock()
}

// Refused returns the count of refused requests by reply text.
func (s *Stats) Refused() map[string]int64 {
	s.refusedMu.Lock()
	defer s.refusedMu.Unlock()
	out := make(map[string]int64, len(s.refused))
	for k, v := range s.refused {
		out[k] = v
	}
	return out
}

// CountAccepted counts a report acknowledged at now, also per minute.
func (s *Stats) CountAccepted(now time.Time) {
	s.Accepted.Add(1)
	m := now.Unix() / 60
	slot := &s.perMinute[m%60]
	if old := slot.minute.Load(); old != m {
		if slot.minute.CompareAndSwap(old, m) {
			slot.n.Store(0)
		}
	}
	slot.n.Add(1)
}

// PerMinute returns the acknowledged reports in each of the last n minutes
// (n <= 60), oldest first; the last entry is the current minute so far.
func (s *Stats) PerMinute(now time.Time, n int) []int {
	n = min(max(n, 1), 60)
	out := make([]int, n)
	cur := now.Unix() / 60
	for i := range n {
		m := cur - int64(n-1-i)
		slot := &s.perMinute[((m%60)+60)%60]
		if slot.minute.Load() == m {
			out[i] = int(slot.n.Load())
		}
	}
	return out
}
