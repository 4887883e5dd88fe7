package officerui_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/auth"
	"github.com/tes-traffic/tes/internal/officerui"
	"github.com/tes-traffic/tes/internal/review"
	"github.com/tes-traffic/tes/internal/sqlite"
)

// The benchmarks measure the dashboard's server side (session check, store
// query, decryption of the shown rows, template) through its http.Handler,
// against a real SQLite store holding TES_BENCH_ROWS violations (default
// 10,000) and a tenth as many driver records. Run them at two sizes to see
// that the cost per page does not grow with the table:
//
//	go test ./internal/officerui -run '^$' -bench . -benchtime 2s
//	TES_BENCH_ROWS=1000000 go test ./internal/officerui -run '^$' -bench . -benchtime 2s -timeout 30m

const benchBatch = 1000 // violations per Ingest call while seeding

// benchFixture is one seeded store and dashboard shared by every benchmark
// of the process.
type benchFixture struct {
	store   *sqlite.DB
	handler http.Handler
	cookie  *http.Cookie
	csrf    string
	rows    int
	drivers int
	sample  []int64 // ids spread over the table, for the process page
	seq     int     // violations made for BenchmarkApprove
}

var (
	benchOnce sync.Once
	bench     *benchFixture
	benchErr  error
	benchDir  string
)

// TestMain removes the benchmarks' database when the process ends.
func TestMain(m *testing.M) {
	code := m.Run()
	if bench != nil {
		bench.store.Close()
	}
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchRows() (int, error) {
	s := os.Getenv("TES_BENCH_ROWS")
	if s == "" {
		return 10_000, nil
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < 100 {
		return 0, fmt.Errorf("TES_BENCH_ROWS=%q: want a whole number of at least 100", s)
	}
	return n, nil
}

func benchPlate(i int) string { return fmt.Sprintf("BP %07d", i) }

func getBench(b *testing.B) *benchFixture {
	b.Helper()
	benchOnce.Do(func() { bench, benchErr = seedBench() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

// seedBench fills a fresh store: n violations received over the past year
// for n/10 plates, in Ingest batches of benchBatch, then one approval per
// plate so that every plate has a driver record; then it builds the
// dashboard and signs an officer in.
func seedBench() (*benchFixture, error) {
	n, err := benchRows()
	if err != nil {
		return nil, err
	}
	if benchDir, err = os.MkdirTemp("", "tes-officerui-bench-"); err != nil {
		return nil, err
	}
	master := make([]byte, atrest.KeySize)
	rand.Read(master)
	keys, err := atrest.New(master)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	// Not closed with b.Cleanup: the store outlives this benchmark and
	// serves the others; TestMain removes it.
	store, err := sqlite.Open(ctx, filepath.Join(benchDir, "tes.db"), keys)
	if err != nil {
		return nil, err
	}
	f := &benchFixture{store: store, rows: n, drivers: max(1, n/10)}

	start := time.Now()
	year := 365 * 24 * time.Hour
	t0 := start.Add(-year)
	var firstOfPlate []int64 // violation ids 0..drivers-1 carry each plate once
	items := make([]*tes.IngestItem, 0, benchBatch)
	for i := range n {
		d := sha256.Sum256(fmt.Appendf(nil, "bench %d", i))
		items = append(items, &tes.IngestItem{
			MessageDigest: d[:],
			ReceivedAt:    t0.Add(time.Duration(i) * (year / time.Duration(n))),
			Report: &tes.Report{
				Plate: benchPlate(i % f.drivers), Speed: 30 + (i*37)%140, SpeedLimit: 50,
				Location: "Ring road, gantry " + strconv.Itoa(i%40), User: "unit07", Suite: tes.SuiteTES1,
				Evidence: demoEvidence("unit07"),
			},
		})
		if len(items) < benchBatch && i < n-1 {
			continue
		}
		if err := store.Ingest(ctx, items); err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.Outcome != tes.OutcomeStored {
				return nil, fmt.Errorf("seed: outcome %v", it.Outcome)
			}
			if len(firstOfPlate) < f.drivers {
				firstOfPlate = append(firstOfPlate, it.ViolationID)
			}
			if it.ViolationID%int64(max(1, n/200)) == 0 {
				f.sample = append(f.sample, it.ViolationID)
			}
		}
		items = items[:0]
	}
	ingested := time.Since(start)
	rules := tes.DefaultRules()
	for _, id := range firstOfPlate {
		if _, err := store.Decide(ctx, tes.Decision{ViolationID: id, Approve: true, By: "olga", At: time.Now()}, rules); err != nil {
			return nil, fmt.Errorf("seed approval %d: %w", id, err)
		}
	}
	fmt.Fprintf(os.Stderr, "seeded %d violations and %d driver records in %s (ingest %s, approvals %s)\n",
		f.rows, f.drivers, time.Since(start).Round(time.Millisecond), ingested.Round(time.Millisecond),
		(time.Since(start) - ingested).Round(time.Millisecond))

	log := slog.New(slog.DiscardHandler)
	au := auth.New(store, log)
	rv := review.New(store, rules, log)
	if _, err := au.CreateUser(ctx, "bench", "olga", tes.RoleOfficer, testPassword, false); err != nil {
		return nil, err
	}
	ui, err := officerui.New(officerui.Config{Store: store, Review: rv, Auth: au, Log: log})
	if err != nil {
		return nil, err
	}
	f.handler = ui.Handler()

	// Sign in through the handler, as a browser does.
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, httptest.NewRequest("GET", "/login", nil))
	var loginCookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "tes_login_csrf" {
			loginCookie = c
		}
	}
	if loginCookie == nil {
		return nil, fmt.Errorf("no sign-in cookie")
	}
	form := url.Values{"username": {"olga"}, "password": {testPassword}, "csrf": {loginCookie.Value}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(loginCookie)
	w = httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	for _, c := range w.Result().Cookies() {
		if c.Name == "tes_session" {
			f.cookie = c
		}
	}
	if f.cookie == nil {
		return nil, fmt.Errorf("bench sign-in failed: %d", w.Code)
	}
	m := csrfRE.FindStringSubmatch(f.get("/password").Body.String())
	if m == nil {
		return nil, fmt.Errorf("no csrf token")
	}
	f.csrf = m[1]
	return f, nil
}

func (f *benchFixture) get(path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(f.cookie)
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	return w
}

func (f *benchFixture) report(b *testing.B) {
	b.ReportMetric(float64(f.rows), "rows")
}

// BenchmarkQueuePage is one load of the review queue: the original took
// 112 ms at 10,000 pending and grew linearly.
func BenchmarkQueuePage(b *testing.B) {
	f := getBench(b)
	mid := f.sample[len(f.sample)/2]
	for _, bc := range []struct{ name, path string }{
		{"pending-newest", "/dashboard"},
		{"pending-fastest", "/dashboard?sort=speed"},
		{"all-newest", "/dashboard?status=all"},
		{"all-oldest", "/dashboard?status=all&sort=time_asc"},
		{"all-fastest", "/dashboard?status=all&sort=speed"},
		{"band-100+", "/dashboard?band=100%2B"},
		{"plate", "/dashboard?status=all&plate=" + url.QueryEscape(benchPlate(f.drivers/2))},
		{"deep-page", "/dashboard?sort=speed&after=" + url.QueryEscape("100."+strconv.FormatInt(mid, 10))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lat latencies
			for b.Loop() {
				t0 := time.Now()
				if w := f.get(bc.path); w.Code != http.StatusOK {
					b.Fatalf("%s: %d", bc.path, w.Code)
				}
				lat = append(lat, time.Since(t0))
			}
			lat.report(b)
			f.report(b)
		})
	}
}

// BenchmarkProcessPage is one load of /process/{id} (violation, driver
// record, the plate's recent history) for ids spread over the table.
func BenchmarkProcessPage(b *testing.B) {
	f := getBench(b)
	i := 0
	for b.Loop() {
		id := f.sample[i%len(f.sample)]
		i++
		if w := f.get("/process/" + strconv.FormatInt(id, 10)); w.Code != http.StatusOK {
			b.Fatalf("process %d: %d", id, w.Code)
		}
	}
	f.report(b)
}

// BenchmarkApprove is one approval through the dashboard's form: the
// guarded transaction that marks the violation and adds the points to a
// driver record among rows/10. The original took 94 ms at 100,000 drivers.
func BenchmarkApprove(b *testing.B) {
	f := getBench(b)
	ctx := context.Background()
	// Fresh pending violations for existing plates, made before the clock
	// starts.
	ids := make([]int64, 0, b.N)
	items := make([]*tes.IngestItem, 0, benchBatch)
	flush := func() {
		if err := f.store.Ingest(ctx, items); err != nil {
			b.Fatal(err)
		}
		for _, it := range items {
			ids = append(ids, it.ViolationID)
		}
		items = items[:0]
	}
	for range b.N {
		f.seq++
		d := sha256.Sum256(fmt.Appendf(nil, "bench approve %d", f.seq))
		items = append(items, &tes.IngestItem{MessageDigest: d[:], ReceivedAt: time.Now(), Report: &tes.Report{
			Plate: benchPlate((f.seq * 7919) % f.drivers), Speed: 75, User: "unit07", Suite: tes.SuiteTES1}})
		if len(items) == benchBatch {
			flush()
		}
	}
	if len(items) > 0 {
		flush()
	}
	body := url.Values{"csrf": {f.csrf}}.Encode()
	lat := make(latencies, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		req := httptest.NewRequest("POST", "/process/"+strconv.FormatInt(ids[i], 10)+"/approve", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(f.cookie)
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, req)
		if w.Code != http.StatusSeeOther {
			b.Fatalf("approve %d: %d %s", ids[i], w.Code, w.Body)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	lat.report(b)
	f.report(b)
}

// latencies are the times of a benchmark's operations; report adds their
// p50 and p99 to its line (the read-side goal is stated for the p99).
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	at := func(q float64) float64 { return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
