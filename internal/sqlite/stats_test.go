package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
)

func statsTestDB(t *testing.T) *DB {
	t.Helper()
	master := make([]byte, atrest.KeySize)
	rand.Read(master)
	keys, err := atrest.New(master)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "tes.db"), keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func statsIngest(t *testing.T, db *DB, at time.Time, speeds ...int) {
	t.Helper()
	var items []*tes.IngestItem
	for _, s := range speeds {
		d := sha256.Sum256([]byte(at.String() + strconv.Itoa(s) + rand.Text()))
		items = append(items, &tes.IngestItem{
			MessageDigest: d[:],
			ReceivedAt:    at,
			Report:        &tes.Report{Plate: "AB 123", Speed: s, User: "unit7", Suite: tes.SuiteTES1},
		})
	}
	if err := db.Ingest(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}

func TestViolationStats(t *testing.T) {
	db := statsTestDB(t)
	ctx := context.Background()
	h0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

	st, err := db.ViolationStats(ctx, h0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 0 || len(st.Hourly) != 0 || len(st.SpeedBuckets) != 0 {
		t.Fatalf("empty store: got %+v, want no counts", st)
	}

	statsIngest(t, db, h0.Add(-time.Second), 200)                      // before since: not counted
	statsIngest(t, db, h0, 55, 59, 60)                                 // hour 10: 50-59 x2, 60-69 x1
	statsIngest(t, db, h0.Add(59*time.Minute+59*time.Second), 101)     // still hour 10
	statsIngest(t, db, h0.Add(3*time.Hour+time.Minute), 0, 9, 101, 75) // hour 13

	st, err = db.ViolationStats(ctx, h0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Total != 8 {
		t.Errorf("Total = %d, want 8", st.Total)
	}
	wantHours := []tes.HourCount{{Hour: h0, Count: 4}, {Hour: h0.Add(3 * time.Hour), Count: 4}}
	if len(st.Hourly) != len(wantHours) {
		t.Fatalf("Hourly = %+v, want %+v", st.Hourly, wantHours)
	}
	for i, w := range wantHours {
		if got := st.Hourly[i]; !got.Hour.Equal(w.Hour) || got.Count != w.Count {
			t.Errorf("Hourly[%d] = %v %d, want %v %d", i, got.Hour, got.Count, w.Hour, w.Count)
		}
	}
	wantBuckets := []tes.BucketCount{{Min: 0, Count: 2}, {Min: 50, Count: 2}, {Min: 60, Count: 1}, {Min: 70, Count: 1}, {Min: 100, Count: 2}}
	if len(st.SpeedBuckets) != len(wantBuckets) {
		t.Fatalf("SpeedBuckets = %+v, want %+v", st.SpeedBuckets, wantBuckets)
	}
	for i, w := range wantBuckets {
		if st.SpeedBuckets[i] != w {
			t.Errorf("SpeedBuckets[%d] = %+v, want %+v", i, st.SpeedBuckets[i], w)
		}
	}

	// Decisions do not change what was received.
	if _, err := db.Decide(ctx, tes.Decision{ViolationID: 2, Approve: true, By: "olga"}, tes.DefaultRules()); err != nil {
		t.Fatal(err)
	}
	st2, err := db.ViolationStats(ctx, h0)
	if err != nil {
		t.Fatal(err)
	}
	if st2.Total != st.Total {
		t.Errorf("after a decision Total = %d, want %d", st2.Total, st.Total)
	}

	// A later since leaves the earlier hour out.
	st3, err := db.ViolationStats(ctx, h0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st3.Total != 4 || len(st3.Hourly) != 1 || !st3.Hourly[0].Hour.Equal(h0.Add(3*time.Hour)) {
		t.Errorf("since h0+1h: got %+v, want only hour 13 with 4", st3)
	}
}

// TestViolationStatsPlan checks that the aggregate reads only the range of
// each status's received_at index from since on, never the whole table.
func TestViolationStatsPlan(t *testing.T) {
	db := statsTestDB(t)
	rows, err := db.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+statsQuery, microsPerHour, tes.SpeedBucketWidth, int64(0))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	got := strings.Join(plan, "\n")
	if !strings.Contains(got, "USING INDEX "+idxStatusReceived+" (status=? AND received_at>?)") || strings.Contains(got, "SCAN") {
		t.Errorf("plan does not range-scan %s:\n%s", idxStatusReceived, got)
	}
	if testing.Verbose() {
		t.Logf("plan:\n%s", got)
	}
}
