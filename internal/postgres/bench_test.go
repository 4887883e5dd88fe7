package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchItems returns n report items as the protocol layer hands them over,
// the same as internal/sqlite's BenchmarkIngest uses: unique digests and
// report ids, one of a few client keys, plates cycling through nPlates.
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

// BenchmarkIngest commits batches of 1, 100 and 1000 reports, each batch
// one transaction (one durable commit), on a new schema per size; b.N
// counts batches, as in internal/sqlite's BenchmarkIngest, so that the
// rows/s of both compare directly when run together:
//
//	go test -run '^$' -bench 'BenchmarkIngest$' -benchtime 3s ./internal/postgres ./internal/sqlite
func BenchmarkIngest(b *testing.B) {
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db, _ := mustOpen(b)
			ctx := context.Background()
			items := benchItems(0, b.N*batch, 10000)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for i := range b.N {
				if err := db.Ingest(ctx, items[i*batch:(i+1)*batch]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			// This process's CPU only: the client side of the batch
			// (encoding, the wire), not PostgreSQL's.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N*batch), "tes-cpu-ns/row")
			if it := items[len(items)-1]; it.Outcome != tes.OutcomeStored {
				b.Fatalf("last item: %v", it.Outcome)
			}
		})
	}
}

// BenchmarkIngestSessionClaims commits TES/1 session claims (replay-guard
// rows, no report) in batches of four, what the group commit gathers in a
// sessions run with the officer on one core: b.N counts batches.
//
//	TES_TEST_POSTGRES_URL=... go test ./internal/postgres -run '^$' -bench SessionClaims
func BenchmarkIngestSessionClaims(b *testing.B) {
	const batch = 4
	db, _ := mustOpen(b)
	ctx := context.Background()
	items := make([]*tes.IngestItem, batch*b.N)
	for i := range items {
		d := sha256.Sum256(fmt.Appendf(nil, "session %d", i))
		items[i] = &tes.IngestItem{SessionDigest: d[:], ReceivedAt: time.Now()}
	}
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		if err := db.Ingest(ctx, items[i*batch:(i+1)*batch]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "tes-cpu-ns/batch")
	if it := items[len(items)-1]; it.Outcome != tes.OutcomeStored {
		b.Fatalf("last claim: %v", it.Outcome)
	}
}
