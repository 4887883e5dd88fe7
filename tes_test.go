package tes_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

func TestDefaultRules(t *testing.T) {
	r := tes.DefaultRules()
	for _, tc := range []struct{ speed, want int }{
		{0, 0}, {49, 0}, {50, 10}, {69, 10}, {70, 20}, {99, 20}, {100, 50}, {120, 50}, {500, 50},
	} {
		if got := r.Points(tc.speed, 0); got != tc.want {
			t.Errorf("Points(%d) = %d, want %d", tc.speed, got, tc.want)
		}
	}
}

func TestNormalizePlate(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"34abc123", "34ABC123", ""},
		{"  ab-12 c ", "AB-12 C", ""},
		{"ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP", ""},
		{"", "", "empty"},
		{"   ", "", "empty"},
		{"ABCDEFGHIJKLMNOPQ", "", "at most 16"},
		{"AB  12", "", "doubled space"},
		{"AB_12", "", "only letters"},
		{"ÄB12", "", "only letters"},
		{"<script>", "", "only letters"},
		{strings.Repeat("A", 10240), "", "at most 16"},
	} {
		got, err := tes.NormalizePlate(tc.in)
		if tc.err != "" {
			if tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), tc.err) {
				t.Errorf("NormalizePlate(%.20q) error = %v, want EINVALID with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizePlate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestReportValidate(t *testing.T) {
	ok := tes.Report{Plate: "x1", Speed: 80, SpeedLimit: 50, Location: " Main St ", ReportID: "0190C5D2-0000-7000-8000-000000000001"}
	if err := ok.Validate(); err != nil || ok.Plate != "X1" || ok.Location != "Main St" || ok.ReportID != "0190c5d2-0000-7000-8000-000000000001" {
		t.Fatalf("Validate = %v, %+v", err, ok)
	}
	for _, r := range []tes.Report{
		{Plate: "X1", Speed: -1},
		{Plate: "X1", Speed: 501},
		{Plate: "X1", Speed: 50, SpeedLimit: -5},
		{Plate: "X1", Speed: 50, Location: strings.Repeat("x", 201)},
		{Plate: "X1", Speed: 50, Location: "bad\x00byte"},
		{Plate: "X1", Speed: 50, ReportID: "not-a-uuid"},
		{Plate: "X1", Speed: 50, ReportID: "0190c5d2-0000-7000-8000-00000000000g"},
	} {
		if err := r.Validate(); tes.ErrorCode(err) != tes.EINVALID {
			t.Errorf("Validate(%+v) = %v, want EINVALID", r, err)
		}
	}
}

func TestNewReportID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	prev := ""
	for i := 0; i < 1000; i++ {
		id := tes.NewReportID()
		if !re.MatchString(id) {
			t.Fatalf("NewReportID() = %q: not a version 7 UUID", id)
		}
		if _, err := tes.ValidateReportID(id); err != nil {
			t.Fatal(err)
		}
		// Time-ordered at millisecond precision: never earlier than the last.
		if id[:13] < prev {
			t.Fatalf("%s sorts before the previous %s", id, prev)
		}
		prev = id[:13]
	}
}

func TestChainHash(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	e := &tes.Event{Seq: 1, At: at, Actor: "a", Action: "b", Subject: "c", Detail: "d"}
	h1 := tes.ChainHash(nil, e)
	if len(h1) != 32 || !bytes.Equal(h1, tes.ChainHash(nil, e)) {
		t.Fatal("ChainHash is not a deterministic SHA-256")
	}
	for name, f := range map[string]func(*tes.Event){
		"seq":     func(e *tes.Event) { e.Seq = 2 },
		"time":    func(e *tes.Event) { e.At = e.At.Add(time.Microsecond) },
		"actor":   func(e *tes.Event) { e.Actor = "x" },
		"action":  func(e *tes.Event) { e.Action = "x" },
		"subject": func(e *tes.Event) { e.Subject = "x" },
		"detail":  func(e *tes.Event) { e.Detail = "x" },
		// Moving a byte between fields must change the hash (length prefixes).
		"boundary": func(e *tes.Event) { e.Actor, e.Action = "ab", "" },
	} {
		c := *e
		f(&c)
		if bytes.Equal(tes.ChainHash(nil, &c), h1) {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if bytes.Equal(tes.ChainHash(h1, e), h1) {
		t.Error("the previous hash does not enter the hash")
	}
}

func TestErrors(t *testing.T) {
	e := tes.Errorf(tes.ECONFLICT, "Violation %d was already approved.", 7)
	wrapped := fmt.Errorf("decide: %w", e)
	if tes.ErrorCode(wrapped) != tes.ECONFLICT || tes.ErrorMessage(wrapped) != "Violation 7 was already approved." {
		t.Fatalf("code %q message %q", tes.ErrorCode(wrapped), tes.ErrorMessage(wrapped))
	}
	plain := errors.New("disk on fire at /dev/sda")
	if tes.ErrorCode(plain) != tes.EINTERNAL || strings.Contains(tes.ErrorMessage(plain), "sda") {
		t.Fatal("an internal error leaks its text to users")
	}
	if tes.ErrorCode(nil) != "" {
		t.Fatal("nil has a code")
	}
}

func TestParsers(t *testing.T) {
	if s, err := tes.ParseStatus("approved"); err != nil || s != tes.StatusApproved {
		t.Fatal(s, err)
	}
	if _, err := tes.ParseStatus("done"); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatal(err)
	}
	if r, err := tes.ParseRole(" Officer "); err != nil || r != tes.RoleOfficer || !r.CanReview() || r.CanReport() {
		t.Fatal(r, err)
	}
	if !tes.RoleAdmin.CanReport() || !tes.RoleAdmin.CanReview() || tes.RolePolice.CanReview() {
		t.Fatal("role permissions")
	}
	if _, err := tes.ParseRejectReason("because"); tes.ErrorCode(err) != tes.EINVALID {
		t.Fatal(err)
	}
	for _, name := range []string{"", strings.Repeat("a", 65), "a b", "ü"} {
		if tes.ValidateUsername(name) == nil {
			t.Errorf("ValidateUsername(%q) accepted", name)
		}
	}
	if tes.ValidatePassword("1234567") == nil || tes.ValidatePassword(strings.Repeat("x", 257)) == nil || tes.ValidatePassword("12345678") != nil {
		t.Error("ValidatePassword lengths")
	}
}
