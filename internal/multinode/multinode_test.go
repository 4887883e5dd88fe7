package multinode_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/atrest"
	"github.com/tes-traffic/tes/internal/e2e"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/postgres"
	"github.com/tes-traffic/tes/internal/postgres/pgtest"
	"github.com/tes-traffic/tes/internal/storecopy"
	"github.com/tes-traffic/tes/internal/tes1"
)

// SharedFiles are the files of a data directory that every node of one
// deployment must hold identical (docs/deploy-multinode.md): the at-rest
// key, the TES/1 server key the clients pin, the TLS suite's CA and the
// officer signing key that signs audit checkpoints.
var SharedFiles = []string{"store.key", "tes1-server-key.pem", "tls-ca.pem", "signing.pem"}

// startNodes starts node 1 on the database at url, copies its shared files
// into a second data directory and starts node 2 there.
func startNodes(t *testing.T, url string) (n1, n2 *e2e.Officer) {
	t.Helper()
	dir1, dir2 := filepath.Join(t.TempDir(), "node1"), filepath.Join(t.TempDir(), "node2")
	n1 = e2e.StartOfficer(t, dir1, "--db", url)
	if n1.AdminPassword == "" {
		t.Fatal("node 1 did not create the admin on the empty database")
	}
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range SharedFiles {
		b, err := os.ReadFile(filepath.Join(dir1, f))
		if err != nil {
			t.Fatalf("node 1 has no %s: %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(dir2, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n2 = e2e.StartOfficer(t, dir2, "--db", url)
	if n2.AdminPassword != "" {
		t.Fatal("node 2 created a second admin on a store that has one")
	}
	if n1.Fingerprint != n2.Fingerprint {
		t.Fatalf("the nodes show different TES/1 keys: %s and %s", n1.Fingerprint, n2.Fingerprint)
	}
	return n1, n2
}

// mustRun runs the tes binary and fails unless it exits with code.
func mustRun(t *testing.T, code int, env []string, args ...string) (string, string) {
	t.Helper()
	out, errOut, got := e2e.Run(t, "", env, args...)
	if got != code {
		t.Fatalf("tes %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out, errOut)
	}
	return out, errOut
}

func mustAddUser(t *testing.T, dir, url, name, role, password string) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), name+".pw")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"user", "add", name, "--role", role, "--data", dir, "--password-file", pw}
	if url != "" {
		args = append(args, "--db", url)
	}
	mustRun(t, 0, nil, args...)
}

// openStore opens the shared store in this process, with node 1's key, to
// check what the nodes wrote.
func openStore(t *testing.T, dir, url string) *postgres.DB {
	t.Helper()
	keys, err := atrest.Load(filepath.Join(dir, "store.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(context.Background(), url, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func reportID(client, n int) string {
	return fmt.Sprintf("%08x-%04x-7000-8000-%012x", 0x0190_0000+client, n, client*100000+n)
}

// TestTwoNodesMixedLoad is the integration test: two `tes officer`
// processes on one PostgreSQL database, 16 TES/1 clients spread over both
// sending 8,000 DATA messages, with exact replays and report_ids resent
// on the same node and on the other one mixed in. Exactly the unique
// reports are stored, every non-replay is acknowledged, every replay is
// refused; a SESSION replayed on the other node is refused too; two
// officers approving the same violation through the two nodes' data
// directories at once apply it once; `tes audit verify` passes.
func TestTwoNodesMixedLoad(t *testing.T) {
	url := pgtest.NewDatabase(t)
	n1, n2 := startNodes(t, url)
	nodes := []*e2e.Officer{n1, n2}
	const (
		clients   = 16
		perClient = 500 // 8,000 messages in all
		users     = 4
		password  = "police-password-1"
	)
	for u := range users {
		mustAddUser(t, n1.DataDir, url, fmt.Sprintf("police%d", u), "police", password)
	}

	// Per client, in each group of ten messages: seven new reports (0, 1,
	// 2, 3, 5, 7, 8); at 4 a resend of the partner client's report 3 (the
	// partner is on the other node, so the same report_id reaches both
	// nodes at about the same time); at 6 a resend of its own report 5 (a
	// lost acknowledgement: a new DATA message with the same report_id);
	// at 9 the exact bytes of message 8 again (a replay).
	type result struct {
		acked, refused, replaysRefused int
		firstErr                       error
	}
	results := make([]result, clients)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[c]
			fail := func(err error) {
				if res.firstErr == nil {
					res.firstErr = err
				}
			}
			node := nodes[c%2]
			cl, err := tes1.Dial(ctx, node.TES1Addr, tes1.ClientConfig{Fingerprint: node.Fingerprint})
			if err != nil {
				fail(err)
				return
			}
			defer cl.Close()
			if err := cl.Login(ctx, fmt.Sprintf("police%d", c%users), password); err != nil {
				fail(fmt.Errorf("login: %w", err))
				return
			}
			<-start
			partner := c ^ 1
			var lastPayload, lastSig string
			for m := range perClient {
				var payload, sig string
				replay := m%10 == 9
				if replay {
					payload, sig = lastPayload, lastSig
				} else {
					rid := reportID(c, m)
					switch m % 10 {
					case 4:
						rid = reportID(partner, m-1)
					case 6:
						rid = reportID(c, m-1)
					}
					r := &tes.Report{ReportID: rid, Plate: fmt.Sprintf("MN-%02d-%02d", c, m%37), Speed: 40 + (c*7+m)%120, SpeedLimit: 50, Location: "E40 km " + strconv.Itoa(m)}
					if payload, sig, err = cl.SealReport(r); err != nil {
						fail(err)
						return
					}
				}
				status, text, err := cl.Request(ctx, tes1.TypeData, payload, sig)
				if err != nil {
					fail(fmt.Errorf("message %d: %w", m, err))
					return
				}
				switch {
				case replay && status == tes1.StatusError && text == tes1.ReplyReplay:
					res.replaysRefused++
				case !replay && status == tes1.StatusOK && text == tes1.ReplyQueued:
					res.acked++
				default:
					res.refused++
					fail(fmt.Errorf("message %d (replay %v): %s %q", m, replay, status, text))
				}
				lastPayload, lastSig = payload, sig
			}
		}()
	}
	close(start)
	wg.Wait()
	acked, replays := 0, 0
	for c, r := range results {
		if r.firstErr != nil {
			t.Errorf("client %d: %v", c, r.firstErr)
		}
		acked += r.acked
		replays += r.replaysRefused
	}
	if t.Failed() {
		t.FailNow()
	}
	const wantAcked, wantReplays, wantStored = clients * perClient * 9 / 10, clients * perClient / 10, clients * perClient * 7 / 10
	if acked != wantAcked || replays != wantReplays {
		t.Fatalf("%d acknowledged and %d replays refused, want %d and %d", acked, replays, wantAcked, wantReplays)
	}

	db := openStore(t, n1.DataDir, url)
	counts, err := db.CountByStatus(ctx)
	if err != nil || counts[tes.StatusPending] != wantStored || counts[tes.StatusApproved]+counts[tes.StatusRejected] != 0 {
		t.Fatalf("CountByStatus = %v, %v; want exactly the %d unique reports pending", counts, err, wantStored)
	}
	// Every unique report_id is there once, and nothing else is.
	seen := map[string]int64{}
	f := tes.ViolationFilter{Limit: 1000, Sort: "time_asc"}
	for {
		page, next, err := db.Violations(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			if _, dup := seen[v.ReportID]; dup {
				t.Fatalf("report_id %s stored twice", v.ReportID)
			}
			seen[v.ReportID] = v.ID
		}
		if next == nil {
			break
		}
		f.After = next
	}
	for c := range clients {
		for m := range perClient {
			if k := m % 10; k != 4 && k != 6 && k != 9 {
				if _, ok := seen[reportID(c, m)]; !ok {
					t.Fatalf("report %s (client %d, message %d) was acknowledged but is not stored", reportID(c, m), c, m)
				}
			}
		}
	}
	if len(seen) != wantStored {
		t.Fatalf("%d violations stored, want %d", len(seen), wantStored)
	}

	// A SESSION replayed on the other node is refused: the replay guard is
	// the database's, not a node's memory.
	sessionReplayAcrossNodes(t, n1, n2)

	// Two officers approve the same violations at the same moment, one
	// through each node's data directory (`tes approve` opens the shared
	// store, as the dashboard behind the load balancer would).
	approveRace(t, db, n1, n2, url, seen)

	// The audit chain: one line across both nodes. tes audit verify
	// recomputes it (and checks the nodes' signed checkpoints); the store
	// checks it too, with tes.ChainHash over every event in seq order.
	out, _ := mustRun(t, 0, nil, "audit", "verify", "--db", url, "--data", n1.DataDir)
	if !strings.Contains(out, "OK") {
		t.Errorf("tes audit verify:\n%s", out)
	}
	n, _, err := storecopy.VerifyChain(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for before := int64(0); ; {
		page, err := db.Events(ctx, before, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if e.Action == "report.accepted" {
				accepted++
			}
		}
		before = page[len(page)-1].Seq
	}
	if accepted != wantStored {
		t.Errorf("%d report.accepted events in a chain of %d, want one per stored report (%d)", accepted, n, wantStored)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	t.Logf("%d messages: %d acknowledged, %d replays refused; %d reports stored; audit chain of %d events verified", clients*perClient, acked, replays, len(seen), n)
}

// sessionReplayAcrossNodes opens a TES/1 session on node 1 with raw
// messages, then sends the very same SESSION message to node 2.
func sessionReplayAcrossNodes(t *testing.T, n1, n2 *e2e.Officer) {
	t.Helper()
	key, err := legacy.GenerateRSAKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var session []byte
	for i, node := range []*e2e.Officer{n1, n2} {
		conn, hs := rawHandshake(t, node.TES1Addr)
		if session == nil {
			pub, _, err := legacy.ParsePublicKeyPEM(hs)
			if err != nil {
				t.Fatal(err)
			}
			desKey := make([]byte, legacy.DESKeySize)
			rand.Read(desKey)
			ek, err := legacy.EncryptKey(rand.Reader, pub, desKey)
			if err != nil {
				t.Fatal(err)
			}
			inner := append([]byte(`{"encrypted_key": `), tes1.AppendPyString(nil, hex.EncodeToString(ek))...)
			inner = append(inner, `, "client_public_key": `...)
			inner = tes1.AppendPyString(inner, legacy.MarshalPublicKeyPEM(&key.PublicKey))
			inner = append(inner, '}')
			session = tes1.AppendMessage(nil, tes1.TypeSession, string(inner), "")
		}
		status, text := rawRequest(t, conn, session)
		conn.close()
		want := [][2]string{{tes1.StatusOK, tes1.ReplySessionReady}, {tes1.StatusError, tes1.ReplySessionReplay}}[i]
		if status != want[0] || text != want[1] {
			t.Errorf("SESSION on node %d: %s %q, want %s %q", i+1, status, text, want[0], want[1])
		}
	}
}

// approveRace approves ten violations twice at once, once through each
// node's data directory, and checks that each is applied once, the loser
// is told who decided first, and the drivers' totals are exact.
func approveRace(t *testing.T, db *postgres.DB, n1, n2 *e2e.Officer, url string, stored map[string]int64) {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for _, id := range stored {
		ids = append(ids, id)
		if len(ids) == 10 {
			break
		}
	}
	before := map[string]int{}
	var plates []string
	for _, id := range ids {
		v, err := db.Violation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := before[v.Plate]; !ok {
			plates = append(plates, v.Plate)
		}
		before[v.Plate] += v.Points(tes.DefaultRules())
	}
	loser := regexp.MustCompile(`already approved by cli:(olga|omar) at \d{4}-`)
	for _, id := range ids {
		type run struct {
			out, errOut string
			code        int
		}
		var runs [2]run
		var wg sync.WaitGroup
		for k, who := range []string{"olga", "omar"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dir := []*e2e.Officer{n1, n2}[k].DataDir
				r := &runs[k]
				r.out, r.errOut, r.code = e2e.Run(t, "", []string{"USER=" + who}, "approve", strconv.FormatInt(id, 10), "--db", url, "--data", dir)
			}()
		}
		wg.Wait()
		win := -1
		for k, r := range runs {
			switch r.code {
			case 0:
				if win >= 0 {
					t.Fatalf("violation %d approved twice:\n%s\n%s", id, runs[0].out, runs[1].out)
				}
				win = k
			case 3:
			default:
				t.Fatalf("tes approve %d: exit %d\n%s%s", id, r.code, r.out, r.errOut)
			}
		}
		if win < 0 {
			t.Fatalf("violation %d: neither approval succeeded:\n%s\n%s", id, runs[0].errOut, runs[1].errOut)
		}
		m := loser.FindStringSubmatch(runs[1-win].errOut)
		if m == nil || m[1] != []string{"olga", "omar"}[win] {
			t.Errorf("violation %d: the second officer was told %q; want who approved first (%s)", id, runs[1-win].errOut, []string{"olga", "omar"}[win])
		}
	}
	for _, p := range plates {
		d, err := db.Driver(ctx, p)
		if err != nil || d.Points != before[p] {
			t.Errorf("Driver(%s) = %+v, %v; want %d points (each approval applied once)", p, d, err, before[p])
		}
	}
	counts, _ := db.CountByStatus(ctx)
	if counts[tes.StatusApproved] != len(ids) {
		t.Errorf("%d approved, want %d", counts[tes.StatusApproved], len(ids))
	}
}
