package tes1

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
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
