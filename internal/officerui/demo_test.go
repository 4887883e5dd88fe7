package officerui_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

// Demo data: a few days of plausible traffic for the browser tests and the
// documentation's screenshots. The generator is seeded, so every run draws
// the same pictures.

var demoLocations = []string{
	"A31 northbound, km 42.3",
	"Riverside Drive, school zone",
	"Harbour Road at Mill Lane",
	"Ring road, tunnel exit east",
	"Station Avenue 118",
	"Bypass B9, km 7.1",
	"Old Market Street",
	"Airport link, gantry 4",
	"Hill Road, descent before bend",
	"Lakeside Boulevard at the marina",
}

var demoUnits = []string{"pete", "unit07", "unit12", "unit21"}

// demoPlate draws a plate in one of a few national styles.
func demoPlate(r *rand.Rand) string {
	letters := "ABCDEFGHJKLMNPRSTUVWXYZ"
	l := func() byte { return letters[r.IntN(len(letters))] }
	switch r.IntN(3) {
	case 0:
		return fmt.Sprintf("%c%c %04d", l(), l(), r.IntN(10000))
	case 1:
		return fmt.Sprintf("%c-%c%c %d", l(), l(), l(), 100+r.IntN(9900))
	default:
		return fmt.Sprintf("%c%c%02d %c%c%c", l(), l(), r.IntN(100), l(), l(), l())
	}
}

// demoEvidence is a TES/1 report's evidence from unit, with a real RSA
// signature (pki_test.go), so that the process page shows it verified.
func demoEvidence(unit string) tes.Evidence { return pki().tes1Evidence(unit) }

// seedDemo ingests n violations spread over the last three days before now,
// then decides about half of the older ones, with repeat offenders so that
// some records pass the threshold. It returns the pending ids, newest last.
func seedDemo(t testing.TB, s tes.Store, rules tes.Rules, now time.Time, n int) []int64 {
	t.Helper()
	r := rand.New(rand.NewPCG(2026, 3))
	plates := make([]string, 60)
	for i := range plates {
		plates[i] = demoPlate(r)
	}
	limits := []int{30, 50, 50, 80, 100, 120}
	type seeded struct {
		at time.Time
		id int64
	}
	var all []seeded
	for i := range n {
		// Older first, with more traffic by day than by night.
		at := now.Add(-72 * time.Hour).Add(time.Duration(i) * 72 * time.Hour / time.Duration(n))
		at = at.Add(time.Duration(r.IntN(40)) * time.Minute)
		if h := at.Hour(); (h < 6 || h > 21) && r.IntN(3) > 0 {
			continue
		}
		if at.After(now) {
			at = now.Add(-time.Duration(r.IntN(30)+1) * time.Minute)
		}
		plate := plates[r.IntN(len(plates))]
		if r.IntN(5) == 0 {
			plate = plates[r.IntN(4)] // repeat offenders
		}
		limit := limits[r.IntN(len(limits))]
		speed := limit + 6 + int(r.ExpFloat64()*18)
		unit := demoUnits[r.IntN(len(demoUnits))]
		rep := tes.Report{
			Plate: plate, Speed: speed, SpeedLimit: limit,
			Location:   demoLocations[r.IntN(len(demoLocations))],
			ObservedAt: at.Add(-time.Duration(5+r.IntN(50)) * time.Second),
			User:       unit, Suite: tes.SuiteTES1, Evidence: demoEvidence(unit),
		}
		if r.IntN(4) == 0 {
			pki().signTLS(&rep, fmt.Sprintf("cam-%03d", 10+r.IntN(40)))
		}
		id := ingestAt(t, s, at, rep)[0]
		all = append(all, seeded{at, id})
	}
	var pending []int64
	officers := []string{"olga", "ada", "olga", "omar"}
	for i, v := range all {
		age := now.Sub(v.at)
		if age > 10*time.Hour && r.IntN(10) < 8 || age > 3*time.Hour && r.IntN(10) < 3 {
			d := tes.Decision{ViolationID: v.id, By: officers[r.IntN(len(officers))], At: v.at.Add(time.Duration(20+r.IntN(200)) * time.Minute)}
			if d.At.After(now) {
				d.At = now.Add(-time.Minute)
			}
			if r.IntN(6) == 0 {
				d.Reason = tes.RejectReasons[r.IntN(len(tes.RejectReasons))]
				if d.Reason == tes.ReasonOther {
					d.Note = "Speed reading disputed by the unit's supervisor."
				}
			} else {
				d.Approve = true
			}
			if _, err := s.Decide(context.Background(), d, rules); err != nil {
				t.Fatalf("decide demo %d: %v", i, err)
			}
			continue
		}
		pending = append(pending, v.id)
	}
	return pending
}

// demoStatus is what a server that has run for a few days reports.
func demoStatus(now time.Time) tes.ServerStatus {
	r := rand.New(rand.NewPCG(7, 7))
	per := make([]int, 30)
	for i := range per {
		per[i] = r.IntN(6) + r.IntN(3)*r.IntN(4)
	}
	return tes.ServerStatus{
		StartedAt: now.Add(-(3*24 + 4) * time.Hour).Add(-17 * time.Minute),
		Fingerprints: []tes.KeyFingerprint{
			{Suite: "tes1 (RSA-2048)", Fingerprint: "SHA256:q3Zk1m0f6S8yC5cJbU7xWq1n2PpR9tLhE4vGdA0sKfY"},
			{Suite: "tls (Ed25519)", Fingerprint: "SHA256:Vt8e2N5bQy0rXf4HcLk7wJm3Sd9uPzA1gRo6TiEqBnM"},
		},
		Connections:  4,
		ReportsTotal: 1862,
		RefusedTotal: 3,
		PerMinute:    per,
	}
}
