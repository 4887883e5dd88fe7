package tes1

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tes-traffic/tes"
)

// FuzzParseMessage: ParseMessage's fast path for canonical frames
// (parseCanonical, plainString) gives exactly what encoding/json gives,
// for every input it accepts.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"type": "DATA", "payload": "00ff", "signature": "11"}`,
		`{"type": "LOGIN", "payload": "abcd"}`,
		`{"type": "SESSION", "payload": "{\"encrypted_key\": \"00\"}"}`,
		`{"type": "", "payload": "x"}`,
		`{"type": "DATA", "payload": "x", "signature": "y", "signature": "z"}`,
		`{"type": "DATA", "payload": "é\u00e9", "signature": ""}`,
		`{"type": "DATA", "payload": "a"} `,
		`{"type": "DATA","payload": "a"}`,
		`{"Type": "DATA", "payload": "a"}`,
		"{\"type\": \"DATA\", \"payload\": \"\x7f\"}",
		`{"type": "DATA", "payload": 5}`,
		`{"type": "DATA", "payload": "{\"plate\": \"AB\\\\1\", \"speed\": 90}", "signature": "c2ln"}`,
		`{"type": "DATA", "payload": "a\\"}`,
		`{"type": "DATA", "payload": "a\n"}`,
		`{"type": "DATA", "payload": "\u00e9\""}`,
		`{"type": "D\"A", "payload": "x"}`,
		`{"type": "DATA", "payload": "x", "signature": "\\"}`,
		`{"type": "DATA", "payload": "x\`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if !utf8.Valid(frame) {
			return // ParseMessage refuses these before either path
		}
		fast, ok := parseCanonical(frame)
		if !ok {
			return
		}
		var slow Message
		if err := json.Unmarshal(frame, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", frame, err)
		}
		if fast.Type != slow.Type || !bytes.Equal(fast.Payload, slow.Payload) ||
			(fast.Signature == nil) != (slow.Signature == nil) || fast.Signature != nil && *fast.Signature != *slow.Signature {
			t.Fatalf("%q: fast %+v, encoding/json %+v", frame, fast, slow)
		}
		if fast.Type == "" {
			t.Fatalf("%q: fast path accepted an empty type", frame)
		}
		var want string
		wantOK := json.Unmarshal(slow.Payload, &want) == nil
		if got, ok := fast.PayloadString(); ok != wantOK || got != want {
			t.Fatalf("%q: PayloadString %q %v, encoding/json %q %v", frame, got, ok, want, wantOK)
		}
	})
}

func BenchmarkParseMessage(b *testing.B) {
	frame := AppendMessage(nil, TypeData, string(bytes.Repeat([]byte("0f"), 80)), string(bytes.Repeat([]byte("a1"), 256)))
	tlsFrame := AppendMessage(nil, TypeData, `{"report_id": "0190c5d2-0000-7000-8000-000000000001", "plate": "AB123", "speed": 97, "location": "E40 km 12"}`,
		string(bytes.Repeat([]byte("A"), 88)))
	b.Run("tls-canonical", func(b *testing.B) {
		for b.Loop() {
			m, err := ParseMessage(tlsFrame)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := m.PayloadString(); !ok {
				b.Fatal("payload")
			}
		}
	})
	b.Run("canonical", func(b *testing.B) {
		for b.Loop() {
			m, err := ParseMessage(frame)
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := m.PayloadString(); !ok {
				b.Fatal("payload")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var m Message
			if err := json.Unmarshal(frame, &m); err != nil {
				b.Fatal(err)
			}
			var s string
			if err := json.Unmarshal(m.Payload, &s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestParseCanonicalShapes: the messages our clients send take the fast
// path; others still parse, through encoding/json.
func TestParseCanonicalShapes(t *testing.T) {
	report := string(AppendReport(nil, &tes.Report{ReportID: tes.NewReportID(), Plate: "AB 12", Speed: 97, Location: `E40 "km" 12 \ north`}))
	for _, c := range []struct {
		name  string
		frame []byte
		fast  bool
	}{
		{"TES/1 DATA", AppendMessage(nil, TypeData, "00ff", "a1b2"), true},
		{"TLS-suite DATA", AppendMessage(nil, TypeData, report, "c2lnbmF0dXJl"), true},
		{"LOGIN", AppendMessage(nil, TypeLogin, "00ff", ""), true},
		{"HANDSHAKE (a PEM key)", AppendMessage(nil, TypeHandshake, "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", ""), true},
		{"non-ASCII payload", AppendMessage(nil, TypeData, "plaque é", "00"), false},
		{"object payload", []byte(`{"type": "SESSION", "payload": {"encrypted_key": "00"}}`), false},
	} {
		if _, ok := parseCanonical(c.frame); ok != c.fast {
			t.Errorf("%s: fast path %v, want %v", c.name, ok, c.fast)
		}
		m, err := ParseMessage(c.frame)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var want Message
		if err := json.Unmarshal(c.frame, &want); err != nil || m.Type != want.Type || !bytes.Equal(m.Payload, want.Payload) {
			t.Errorf("%s: %+v, encoding/json %+v (%v)", c.name, m, want, err)
		}
	}
	m, _ := ParseMessage(AppendMessage(nil, TypeData, report, "c2lnbmF0dXJl"))
	if got, ok := m.PayloadString(); !ok || got != report {
		t.Errorf("TLS-suite payload = %q, %v; want %q", got, ok, report)
	}
}

// FuzzSessionPayload: parseSessionPayload's direct path gives what
// encoding/json gives for every input it takes.
func FuzzSessionPayload(f *testing.F) {
	for _, s := range []string{
		`{"encrypted_key": "00ff", "client_public_key": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"}`,
		`{"encrypted_key": "00", "client_public_key": "a\\b\"c"}`,
		`{"client_public_key": "k", "encrypted_key": "00"}`,
		`{"encrypted_key": "00", "client_public_key": "\t"}`,
		`{"encrypted_key": "00", "client_public_key": "x\u00e9"}`,
		`{"encrypted_key": "00", "client_public_key": "x"} `,
		`{"encrypted_key": 1, "client_public_key": "x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseSessionPayload(raw)
		var want sessionPayload
		wantErr := json.Unmarshal(raw, &want)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, encoding/json %v", raw, err, wantErr)
		}
		if err == nil && got != want {
			t.Fatalf("%q: %+v, encoding/json %+v", raw, got, want)
		}
	})
}

func BenchmarkSessionPayload(b *testing.B) {
	pem := "-----BEGIN PUBLIC KEY-----\n" + strings.Repeat(strings.Repeat("A", 64)+"\n", 6) + "-----END PUBLIC KEY-----\n"
	raw := []byte(`{"encrypted_key": "` + strings.Repeat("0f", 256) + `", "client_public_key": ` + string(AppendPyString(nil, pem)) + `}`)
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if p, err := parseSessionPayload(raw); err != nil || p.ClientPublicKey != pem {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var p sessionPayload
			if err := json.Unmarshal(raw, &p); err != nil || p.ClientPublicKey != pem {
				b.Fatal(err)
			}
		}
	})
}

// TestParseReportShapes: the reports our clients and the original's client
// send take the direct path; the rest fall back to encoding/json with the
// same result.
func TestParseReportShapes(t *testing.T) {
	full := &tes.Report{ReportID: tes.NewReportID(), Plate: "AB 12", Speed: 97, SpeedLimit: 50,
		Location: `E40 "km" 12 \ north`, ObservedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		name  string
		plain []byte
		fast  bool
	}{
		{"original client", []byte(`{"plate": "34ABC123", "speed": 120}`), true},
		{"every field (AppendReport)", AppendReport(nil, full), true},
		{"keys in another order", []byte(`{"speed": 120, "plate": "34ABC123", "location": "x"}`), true},
		{"speed as a string", []byte(`{"plate": "34ABC123", "speed": "120"}`), true},
		{"non-ASCII location (\\u escape)", AppendReport(nil, &tes.Report{Plate: "AB 12", Speed: 97, Location: "Zürich"}), false},
		{"speed as a float", []byte(`{"plate": "34ABC123", "speed": 120.0}`), false},
		{"compact separators", []byte(`{"plate":"34ABC123","speed":120}`), false},
		{"null location", []byte(`{"plate": "34ABC123", "speed": 120, "location": null}`), false},
	} {
		var p reportPlain
		if ok := p.parseCanonical(c.plain); ok != c.fast {
			t.Errorf("%s: direct path %v, want %v", c.name, ok, c.fast)
		}
		got, err := ParseReport(c.plain)
		want, wantErr := parseReport(c.plain, false)
		if err != nil || wantErr != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v; encoding/json %+v, %v", c.name, got, err, want, wantErr)
		}
	}
}

func BenchmarkParseReport(b *testing.B) {
	plain := AppendReport(nil, &tes.Report{ReportID: tes.NewReportID(), Plate: "34ABC123", Speed: 120, Location: "E40 km 12"})
	for _, c := range []struct {
		name   string
		direct bool
	}{{"direct", true}, {"encoding/json", false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseReport(plain, c.direct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
