package sqlite_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"syscall"
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

// BenchmarkIngestIndexCost measures what the random-key B-trees cost each
// stored report: the same ingest, on stores of 50,000 reports in batches of
// 200, as shipped and with one of them left out. A report dirties about one
// page of each such B-tree, and every dirty page is a WAL frame (two
// pwrites and a checksum over 4 KiB) and later a checkpoint write. This is
// the part of the SQLite writer's time per report above the floor
// of a batched insert into a table without indexes; none of the three can
// go: the plate index serves plate searches and driver histories, the
// status-speed index the queue sorted by speed (flat from 10,000 to
// 1,000,000 reports), and the digest is the replay guard.
//
//	go test ./internal/sqlite -run '^$' -bench IndexCost -benchtime 30000x
func BenchmarkIngestIndexCost(b *testing.B) {
	const grown, batch = 50_000, 200
	for _, v := range []struct {
		name   string
		drop   []string
		digest bool
	}{
		{"shipped", nil, true},
		{"no-plate-index", []string{"violations_plate_received"}, true},
		{"no-status-speed-index", []string{"violations_status_speed"}, true},
		{"no-replay-digest", nil, false},
		{"none-of-the-three", []string{"violations_plate_received", "violations_status_speed"}, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "tes.db")
			keys := testKeys(b, 1)
			db := mustOpenPath(b, path, keys)
			ctx := context.Background()
			for i := 0; i < grown; i += 1000 {
				if err := db.Ingest(ctx, withoutDigest(benchItems(i, 1000, 10_000), !v.digest)); err != nil {
					b.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			if len(v.drop) > 0 {
				raw, err := sql.Open("sqlite", path)
				if err != nil {
					b.Fatal(err)
				}
				for _, ix := range v.drop {
					if _, err := raw.Exec("DROP INDEX " + ix); err != nil {
						b.Fatal(err)
					}
				}
				if err := raw.Close(); err != nil {
					b.Fatal(err)
				}
			}
			db = mustOpenPath(b, path, keys)
			items := withoutDigest(benchItems(grown, (b.N/batch+1)*batch, 10_000), !v.digest)
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; i < b.N; i += batch {
				if err := db.Ingest(ctx, items[i:i+batch]); err != nil {
					b.Fatal(err)
				}
			}
			cpu = processCPU() - cpu
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/row")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
			if it := items[0]; it.Outcome != tes.OutcomeStored {
				b.Fatalf("first item: %v", it.Outcome)
			}
		})
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withoutDigest turns items into TLS-suite reports, which carry no message
// digest and so write no replay-guard row, when drop is set.
func withoutDigest(items []*tes.IngestItem, drop bool) []*tes.IngestItem {
	if drop {
		for _, it := range items {
			it.MessageDigest = nil
			it.Report.Suite = tes.SuiteTLS
		}
	}
	return items
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
