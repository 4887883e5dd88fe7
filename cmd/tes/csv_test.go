package main

import (
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		err      string
	}{
		{"positional", "AB123,85\nTR06,55,50,Coast road\n", 2, ""},
		{"header any order", "speed,plate,location\n90,x1,Main St\n", 1, ""},
		{"blank lines", "\nAB123,85\n\n", 1, ""},
		{"bad speed", "AB123,fast\n", 0, "line 1: Invalid speed"},
		{"negative", "plate,speed\nAB123,-5\n", 0, "line 2: Invalid speed"},
		{"bad plate", "plate,speed\nOK1,50\nB@D,50\n", 0, "line 3: Invalid plate"},
		{"unknown column", "plate,speed,colour\n", 0, "unknown column \"colour\""},
		{"bad time", "AB123,85,70,x,yesterday\n", 0, "Invalid observed time"},
		{"quote error", "\"AB123,85\n", 0, "CSV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _, err := ReadCSV(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(rs) != tc.n {
				t.Fatalf("got %d reports, %v; want %d", len(rs), err, tc.n)
			}
			for _, r := range rs {
				if r.ReportID == "" || r.ObservedAt.IsZero() {
					t.Fatalf("report without id or time: %+v", r)
				}
			}
		})
	}
}

// FuzzReadCSV: never panics; every accepted row is a valid report.
func FuzzReadCSV(f *testing.F) {
	f.Add("plate,speed,speed_limit,location,observed_at,report_id\nAB123,85,70,Ring,2026-01-02T03:04:05Z,0190c5d2-0000-7000-8000-000000000001\n")
	f.Add("AB123,85\n\"q\"\"x\",1\n")
	f.Fuzz(func(t *testing.T, in string) {
		rs, lines, err := ReadCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(rs) != len(lines) {
			t.Fatalf("%d reports, %d line numbers", len(rs), len(lines))
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted invalid report %+v: %v", r, err)
			}
		}
	})
}
