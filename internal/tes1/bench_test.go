package tes1_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/tes1"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest measures the whole TES/1 ingest path on loopback: 32
// logged-in connections send DATA messages that were encrypted and signed
// before the clock started; the server verifies, decrypts, validates,
// group-commits to SQLite (synchronous=FULL) and replies OK. Reports:
// reports/s and process CPU per acknowledged report (server plus the thin
// load loop, which only writes prepared bytes and reads replies).
//
//	go test ./internal/tes1 -run '^$' -bench Ingest -benchtime 20000x
func BenchmarkIngest(b *testing.B) {
	h := mustStart(b, nil, nil)
	const conns = 32
	clients := make([]*tes1.Client, conns)
	for i := range clients {
		clients[i] = h.login(b, "police1")
	}
	// Prepare every message before the clock starts (RSA signing ≈ 1 ms each).
	msgs := make([][][]byte, conns)
	var wg sync.WaitGroup
	for i := range conns {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				r := &tes.Report{ReportID: tes.NewReportID(), Plate: fmt.Sprintf("B%02dN%06d", i, j), Speed: 60 + j%90}
				p, s, err := clients[i].SealReport(r)
				if err != nil {
					panic(err)
				}
				msgs[i] = append(msgs[i], tes1.AppendMessage(nil, "DATA", p, s))
			}
		}()
	}
	wg.Wait()
	errs := make(chan error, conns)
	if path := os.Getenv("TES_BENCH_CPUPROFILE"); path != "" {
		f, _ := os.Create(path)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	cpu0, t0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[i].Conn()
			fr := tes1.NewFrameReader(c, 0)
			for _, m := range msgs[i] {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := c.Write(m); err != nil {
					errs <- err
					return
				}
				f, err := fr.Next()
				if err != nil {
					errs <- err
					return
				}
				if string(f) != `{"type": "OK", "payload": "Message Queued for Processing"}` {
					errs <- fmt.Errorf("reply %s", f)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	elapsed, cpu := time.Since(t0), cpuTime()-cpu0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "reports/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/report")
	if n := h.count(b); n != b.N {
		b.Fatalf("stored %d, want %d", n, b.N)
	}
}

// BenchmarkFloor measures, in the same run, the per-report work no
// implementation can avoid: one RSA-2048 PKCS#1 v1.5 verify, one DES-CBC
// decrypt of a 48-byte payload, one SHA-256 of it. Their sum (plus the
// store's batched insert, internal/sqlite BenchmarkIngest) is the floor the
// ingest figure is compared with. rsa-verify is crypto/rsa's, the figure the
// floor is stated in; rsa-verify-cached is what the server pays, with the
// key's constants made once per session (legacy.Verifier).
func BenchmarkFloor(b *testing.B) {
	_, ck := testKeys(b)
	key := make([]byte, 8)
	rand.Read(key)
	ciph, _ := legacy.NewSessionCipher(key)
	wire, _ := ciph.Seal(rand.Reader, []byte(`{"plate": "34ABC123", "speed": 120}`))
	sig, _ := legacy.Sign(ck, wire)
	b.Run("rsa-verify", func(b *testing.B) {
		for b.Loop() {
			if err := legacy.Verify(&ck.PublicKey, wire, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	// What the server spends: the key's constants are computed once per session.
	b.Run("rsa-verify-cached", func(b *testing.B) {
		v, err := legacy.NewVerifier(&ck.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := v.Verify(wire, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("des-open", func(b *testing.B) {
		for b.Loop() {
			if _, err := ciph.Open(wire); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sha256", func(b *testing.B) {
		for b.Loop() {
			sha256.Sum256(wire)
		}
	})
	_ = context.Background
}
