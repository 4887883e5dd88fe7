package sqlite_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/sqlite"
)

// benchItems returns n report items as the protocol layer hands them over:
// unique digests and report ids, one of a few client keys, plates cycling
// through nPlates.
func benchItems(start, n, nPlates int) []*tes.IngestItem {
	items := make([]*tes.IngestItem, n)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range items {
		k := start + i
		var seed [8]byte
		binary.BigEndian.PutUint64(seed[:], uint64(k))
		d := sha256.Sum256(seed[:])
		unit := k % 4
		items[i] = &tes.IngestItem{
			MessageDigest: d[:],
			ReceivedAt:    at.Add(time.Duration(k) * time.Millisecond),
			Report: &tes.Report{
				ReportID:   fmt.Sprintf("%08x-0000-4000-8000-%012x", k, k),
				Plate:      fmt.Sprintf("BE-%05d", k%nPlates),
				Speed:      40 + k%120,
				SpeedLimit: 50,
				Location:   "E40 km 12",
				ObservedAt: at,
				User:       fmt.Sprintf("unit%d", unit),
				Suite:      tes.SuiteTES1,
				Evidence: tes.Evidence{
					Signed:         make([]byte, 96),
					Signature:      make([]byte, 256),
					KeyFingerprint: fmt.Sprintf("SHA256:unit%d", unit),
					PublicKey:      make([]byte, 294),
				},
			},
		}
	}
	return items
}

func BenchmarkIngest(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := mustOpen(b)
			// A context that can end, as internal/ingest passes.
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			items := benchItems(0, b.N*batch, 10000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := db.Ingest(ctx, items[i*batch:(i+1)*batch]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			b.StopTimer()
			if it := items[len(items)-1]; it.Outcome != tes.OutcomeStored {
				b.Fatalf("last item: %v", it.Outcome)
			}
		})
	}
}

// BenchmarkIngestSessionClaims is the commit of a TES/1 session key's
// replay-guard row, in batches of two (what a sessions run sees): no
// report, so no audit event.
func BenchmarkIngestSessionClaims(b *testing.B) {
	db := mustOpen(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	items := make([]*tes.IngestItem, 2*b.N)
	for i := range items {
		d := sha256.Sum256(fmt.Appendf(nil, "session %d", i))
		items[i] = &tes.IngestItem{SessionDigest: d[:], ReceivedAt: time.Now()}
	}
	b.ResetTimer()
	for i := 0; i < len(items); i += 2 {
		if err := db.Ingest(ctx, items[i:i+2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestGrown is BenchmarkIngest at batch 100 on a store that
// already holds 200,000 reports, as a server's store does after a day: the
// random-key indexes (message digest, plate key) then touch a different
// page for nearly every row, and every dirty page is a WAL frame.
//
//	go test ./internal/sqlite -run '^$' -bench IngestGrown -benchtime 20000x
func BenchmarkIngestGrown(b *testing.B) {
	const grown, batch = 200_000, 100
	db := mustOpen(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for i := 0; i < grown; i += 1000 {
		if err := db.Ingest(ctx, benchItems(i, 1000, 50_000)); err != nil {
			b.Fatal(err)
		}
	}
	items := benchItems(grown, (b.N/batch+1)*batch, 50_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		if err := db.Ingest(ctx, items[i:i+batch]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// mustFixture fills a new store with nViolations violations over nPlates
// plates and approves one violation of each of nDrivers plates.
func mustFixture(b *testing.B, nViolations, nPlates, nDrivers int) (*sqlite.DB, []*tes.IngestItem) {
	b.Helper()
	db := mustOpen(b)
	ctx := context.Background()
	items := benchItems(0, nViolations, nPlates)
	for i := 0; i < len(items); i += 1000 {
		if err := db.Ingest(ctx, items[i:min(i+1000, len(items))]); err != nil {
			b.Fatal(err)
		}
	}
	for i := range nDrivers {
		d := tes.Decision{ViolationID: items[i].ViolationID, Approve: true, By: "alice"}
		if _, err := db.Decide(ctx, d, tes.DefaultRules()); err != nil {
			b.Fatal(err)
		}
	}
	return db, items
}

func BenchmarkDecide(b *testing.B) {
	const nViolations, nDrivers = 100_000, 10_000
	db, items := mustFixture(b, nViolations, nDrivers, nDrivers)
	ctx := context.Background()
	pending := items[nDrivers:]
	if b.N > len(pending) {
		b.Fatalf("b.N = %d exceeds the %d pending violations", b.N, len(pending))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternate approvals (driver read, decrypt, add, seal) and rejections.
		d := tes.Decision{ViolationID: pending[i].ViolationID, Approve: i%2 == 0, By: "alice", Reason: tes.ReasonOther}
		if _, err := db.Decide(ctx, d, tes.DefaultRules()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkViolationsFirstPage(b *testing.B) {
	db, _ := mustFixture(b, 100_000, 10_000, 0)
	ctx := context.Background()
	for _, f := range []struct {
		name string
		f    tes.ViolationFilter
	}{
		{"pending/time", tes.ViolationFilter{Status: tes.StatusPending}},
		{"pending/speed", tes.ViolationFilter{Status: tes.StatusPending, Sort: "speed"}},
		{"plate", tes.ViolationFilter{Plate: "BE-00042"}},
		{"all/time", tes.ViolationFilter{}},
	} {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				page, _, err := db.Violations(ctx, f.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(page) == 0 {
					b.Fatal("empty page")
				}
			}
		})
	}
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.CountByStatus(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
