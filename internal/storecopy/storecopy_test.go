package storecopy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/storecopy"
)

// memStore is a store in memory: a Source and a Target whose Import can be
// made to lose or change rows, as a broken backend would.
type memStore struct {
	rows     map[string]*storecopy.Batch
	mutate   func(b *storecopy.Batch) // applied to each imported batch
	finished bool
}

func newMem() *memStore { return &memStore{rows: map[string]*storecopy.Batch{}} }

func (m *memStore) Counts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	for t, b := range m.rows {
		out[t] = int64(b.Len())
	}
	return out, nil
}

func (m *memStore) Dump(ctx context.Context, tables []string, size int, fn func(*storecopy.Batch) error) error {
	for _, t := range tables {
		all := m.rows[t]
		if all == nil {
			continue
		}
		// One row per batch: the smallest batches exercise the batching.
		for i := range all.Len() {
			b := &storecopy.Batch{Table: t}
			switch {
			case all.Violations != nil:
				b.Violations = all.Violations[i : i+1]
			case all.Events != nil:
				b.Events = all.Events[i : i+1]
			case all.Users != nil:
				b.Users = all.Users[i : i+1]
			}
			if err := fn(b); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memStore) Import(ctx context.Context, b *storecopy.Batch) error {
	c := *b
	c.Events = nil
	for _, e := range b.Events {
		x := *e
		c.Events = append(c.Events, &x)
	}
	if m.mutate != nil {
		m.mutate(&c)
	}
	all := m.rows[b.Table]
	if all == nil {
		all = &storecopy.Batch{Table: b.Table}
		m.rows[b.Table] = all
	}
	all.Users = append(all.Users, c.Users...)
	all.Violations = append(all.Violations, c.Violations...)
	all.Events = append(all.Events, c.Events...)
	return nil
}

func (m *memStore) FinishImport(ctx context.Context) error { m.finished = true; return nil }

// source returns a store with users, violations and a valid chain.
func source(t *testing.T, events int) *memStore {
	t.Helper()
	m := newMem()
	m.rows[storecopy.TableUsers] = &storecopy.Batch{Table: storecopy.TableUsers, Users: []*tes.User{{Name: "a", Role: tes.RoleAdmin}}}
	v := &storecopy.Batch{Table: storecopy.TableViolations}
	for i := range 5 {
		v.Violations = append(v.Violations, &tes.Violation{ID: int64(i + 1), Plate: "AB-1", Speed: 90})
	}
	m.rows[storecopy.TableViolations] = v
	a := &storecopy.Batch{Table: storecopy.TableAudit}
	var prev []byte
	for i := range events {
		e := &tes.Event{Seq: int64(i + 1), At: time.Unix(int64(i), 0).UTC(), Actor: "x", Action: "test", Detail: fmt.Sprint(i), PrevHash: prev}
		e.Hash = tes.ChainHash(prev, e)
		prev = e.Hash
		a.Events = append(a.Events, e)
	}
	m.rows[storecopy.TableAudit] = a
	return m
}

func TestCopyMovesEverything(t *testing.T) {
	src, dst := source(t, 7), newMem()
	sum, err := storecopy.Copy(context.Background(), src, dst, storecopy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !dst.finished || sum.Events != 7 || len(sum.Mismatches()) != 0 {
		t.Errorf("summary %+v, finished %v", sum, dst.finished)
	}
	if want := src.rows[storecopy.TableAudit].Events[6].Hash; string(sum.Head) != string(want) {
		t.Errorf("head %x, want %x", sum.Head, want)
	}
}

func TestCopyDetectsDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(b *storecopy.Batch)
		want   string
	}{
		{"a lost row", func(b *storecopy.Batch) {
			if len(b.Violations) > 0 && b.Violations[0].ID == 3 {
				b.Violations = nil
			}
		}, "violations: 5 in the source, 4 in the target"},
		{"an edited event", func(b *storecopy.Batch) {
			if len(b.Events) > 0 && b.Events[0].Seq == 4 {
				b.Events[0].Detail = "edited"
			}
		}, "event 4 (test) has hash"},
		{"a lost event", func(b *storecopy.Batch) {
			if len(b.Events) > 0 && b.Events[0].Seq == 2 {
				b.Events = nil
			}
		}, "gap"},
		{"a cut-off end", func(b *storecopy.Batch) {
			if len(b.Events) > 0 && b.Events[0].Seq == 7 {
				b.Events = nil
			}
		}, "audit: 7 in the source, 6 in the target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newMem()
			dst.mutate = tc.mutate
			_, err := storecopy.Copy(context.Background(), source(t, 7), dst, storecopy.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Copy = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestCopyRefusals(t *testing.T) {
	ctx := context.Background()
	dst := source(t, 1)
	if _, err := storecopy.Copy(ctx, source(t, 3), dst, storecopy.Options{}); tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), "not empty") {
		t.Errorf("into a non-empty target: %v", err)
	}
	if _, err := storecopy.Copy(ctx, source(t, 3), newMem(), storecopy.Options{Tables: []string{"passwords"}}); tes.ErrorCode(err) != tes.EINVALID {
		t.Errorf("unknown table: %v", err)
	}
	// A subset is copied in dependency order whatever order it is given in.
	var order []string
	dst = newMem()
	_, err := storecopy.Copy(ctx, source(t, 3), dst, storecopy.Options{Tables: []string{storecopy.TableAudit, storecopy.TableUsers},
		Progress: func(table string, n int64) { order = append(order, table) }})
	if err != nil {
		t.Fatal(err)
	}
	if order[0] != storecopy.TableUsers || dst.rows[storecopy.TableViolations] != nil {
		t.Errorf("copied %v; want users first and no violations", order)
	}
}

func TestDiff(t *testing.T) {
	ctx := context.Background()
	a, b := source(t, 5), source(t, 5)
	if d, err := storecopy.Diff(ctx, a, b, nil, 0); err != nil || len(d) != 0 {
		t.Fatalf("Diff of equal stores = %v, %v", d, err)
	}
	b.rows[storecopy.TableViolations].Violations[2].Speed = 91
	b.rows[storecopy.TableAudit].Events = b.rows[storecopy.TableAudit].Events[:4]
	d, err := storecopy.Diff(ctx, a, b, nil, 0)
	if err != nil || len(d) != 2 || !strings.Contains(d[0], "violations row 3 differs") || !strings.Contains(d[1], "audit row 5: only in the first store") {
		t.Errorf("Diff = %q, %v", d, err)
	}
	if d, _ := storecopy.Diff(ctx, a, b, nil, 1); len(d) != 1 {
		t.Errorf("Diff with max 1 = %d differences", len(d))
	}
}

// sliceRows is n rows and a read error at the end, for Walk.
type sliceRows struct {
	n, i int
	err  error
}

func (r *sliceRows) Next() bool { r.i++; return r.i <= r.n }
func (r *sliceRows) Err() error { return r.err }

// TestWalk: batches of the given size and a last partial one; fn's error
// returned as is, a read error as a *ReadError.
func TestWalk(t *testing.T) {
	scan := func(b *storecopy.Batch) error {
		b.ClientKeys = append(b.ClientKeys, storecopy.ClientKey{Fingerprint: "k"})
		return nil
	}
	var sizes []int
	collect := func(b *storecopy.Batch) error {
		if b.Table != storecopy.TableClientKeys {
			t.Fatalf("batch of table %q", b.Table)
		}
		sizes = append(sizes, b.Len())
		return nil
	}
	for _, tc := range []struct{ rows, size int }{{0, 10}, {25, 10}, {30, 10}, {3, 1000}} {
		sizes = nil
		if err := storecopy.Walk(storecopy.TableClientKeys, tc.size, &sliceRows{n: tc.rows}, scan, collect); err != nil {
			t.Fatal(err)
		}
		total := 0
		for i, n := range sizes {
			total += n
			if n > tc.size || n == 0 || i < len(sizes)-1 && n != tc.size {
				t.Errorf("%d rows by %d: batches %v", tc.rows, tc.size, sizes)
			}
		}
		if total != tc.rows {
			t.Errorf("%d rows by %d: batches %v hold %d", tc.rows, tc.size, sizes, total)
		}
	}
	stop := errors.New("target full")
	if err := storecopy.Walk(storecopy.TableClientKeys, 2, &sliceRows{n: 5}, scan, func(*storecopy.Batch) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
	broken := errors.New("disk read")
	var re *storecopy.ReadError
	if err := storecopy.Walk(storecopy.TableClientKeys, 2, &sliceRows{n: 1, err: broken}, scan, collect); !errors.As(err, &re) || re.Err != broken {
		t.Errorf("read error came back as %v", err)
	}
}
