package evidence_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/evidence"
)

func sampleFields() *evidence.Fields {
	return &evidence.Fields{
		ReportID: "01a21a91-3713-746d-81f7-0f3139c91ba2", DeviceID: "175afcce80f2d9d1", User: "police1",
		Plate: "34ABC123", Speed: 120, SpeedLimit: 90, Location: "E5 km 12, northbound",
		ObservedAt: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
	}
}

// golden is sampleFields' encoding, spelled out field by field as the
// package doc defines it.
func golden() []byte {
	var b []byte
	put := func(p []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	put([]byte("tes-evidence-v1"))
	put([]byte("01a21a91-3713-746d-81f7-0f3139c91ba2"))
	put([]byte("175afcce80f2d9d1"))
	put([]byte("police1"))
	put([]byte("34ABC123"))
	put([]byte{0, 0, 0, 120})
	put([]byte{0, 0, 0, 90})
	put([]byte("E5 km 12, northbound"))
	put(binary.BigEndian.AppendUint64(nil, uint64(time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC).Unix())))
	return b
}

func TestEncodeGolden(t *testing.T) {
	got, err := evidence.Encode(sampleFields())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, golden()) {
		t.Fatalf("Encode =\n%x\nwant\n%x", got, golden())
	}
	f, err := evidence.Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if d := f.Diff(sampleFields()); d != "" {
		t.Errorf("Decode(Encode(f)) differs in %s", d)
	}
	// Absent optional fields: speed limit 0, empty location, no time.
	g := sampleFields()
	g.SpeedLimit, g.Location, g.ObservedAt = 0, "", time.Time{}
	enc, err := evidence.Encode(g)
	if err != nil {
		t.Fatal(err)
	}
	back, err := evidence.Decode(enc)
	if err != nil || back.Diff(g) != "" || !back.ObservedAt.IsZero() {
		t.Fatalf("round trip without optional fields: %+v, %v", back, err)
	}
	if !bytes.HasSuffix(enc, []byte{0, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("absent location and observed_at must be two empty fields; encoding ends %x", enc[len(enc)-8:])
	}
}

func TestEncodeRefuses(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*evidence.Fields)
	}{
		{"report_id", func(f *evidence.Fields) { f.ReportID = "" }},
		{"report_id", func(f *evidence.Fields) { f.ReportID = "01A21A91-3713-746D-81F7-0F3139C91BA2" }},
		{"device_id", func(f *evidence.Fields) { f.DeviceID = "dev 1" }},
		{"user", func(f *evidence.Fields) { f.User = "" }},
		{"plate", func(f *evidence.Fields) { f.Plate = "34abc123" }},
		{"plate", func(f *evidence.Fields) { f.Plate = " 34ABC123" }},
		{"speed", func(f *evidence.Fields) { f.Speed = -1 }},
		{"speed", func(f *evidence.Fields) { f.Speed = 501 }},
		{"speed_limit", func(f *evidence.Fields) { f.SpeedLimit = 501 }},
		{"location", func(f *evidence.Fields) { f.Location = " E5" }},
		{"location", func(f *evidence.Fields) { f.Location = "E5\x00" }},
		{"location", func(f *evidence.Fields) { f.Location = "E5\xff" }},
		{"observed_at", func(f *evidence.Fields) { f.ObservedAt = f.ObservedAt.Add(time.Millisecond) }},
		{"observed_at", func(f *evidence.Fields) { f.ObservedAt = f.ObservedAt.In(time.FixedZone("X", 3600)) }},
	}
	for _, tc := range tests {
		f := sampleFields()
		tc.edit(f)
		_, err := evidence.Encode(f)
		var fe *evidence.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Encode(%+v) = %v, want a FieldError for %s", f, err, tc.field)
		}
	}
}

// TestDecodeStrict: every byte string Encode would not write is refused,
// with the field named.
func TestDecodeStrict(t *testing.T) {
	g := golden()
	with := func(edit func([]byte) []byte) []byte { return edit(bytes.Clone(g)) }
	tests := []struct {
		name, field string
		in          []byte
	}{
		{"empty", "version", nil},
		{"truncated in a length", "plate", g[:92]},
		{"length past the end", "plate", g[:94]},
		{"trailing byte", "observed_at", append(bytes.Clone(g), 0)},
		{"version 2", "version", with(func(b []byte) []byte { b[4+14] = '2'; return b })},
		{"huge length", "version", with(func(b []byte) []byte { b[0] = 0xff; return b })},
		{"lower-case plate", "plate", with(func(b []byte) []byte { i := bytes.Index(b, []byte("34ABC123")); b[i+2] = 'a'; return b })},
		{"speed over 500", "speed", with(func(b []byte) []byte { i := bytes.Index(b, []byte{0, 0, 0, 4, 0, 0, 0, 120}); b[i+6] = 2; return b })},
		{"speed sign bit", "speed", with(func(b []byte) []byte { i := bytes.Index(b, []byte{0, 0, 0, 4, 0, 0, 0, 120}); b[i+4] = 0x80; return b })},
		{"observed_at 4 bytes", "observed_at", append(g[:len(g)-12:len(g)-12], 0, 0, 0, 4, 1, 2, 3, 4)},
		{"too long", "version", make([]byte, evidence.MaxEncodedLen+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := evidence.Decode(tc.in)
			var fe *evidence.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Decode = %+v, %v; want a FieldError for %s", f, err, tc.field)
			}
		})
	}
}

func TestSignAndVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(bytes.NewReader(make([]byte, 32)))
	signed, sig, err := evidence.Sign(key, sampleFields())
	if err != nil {
		t.Fatal(err)
	}
	if err := evidence.VerifySignature(pub, signed, sig); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	signed[len(signed)-1] ^= 1
	if err := evidence.VerifySignature(pub, signed, sig); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("changed message: %v, want ErrBadSignature", err)
	}
	if err := evidence.VerifySignature(pub, signed, sig[:63]); !errors.Is(err, evidence.ErrBadSignature) {
		t.Errorf("short signature: %v, want ErrBadSignature", err)
	}
	if err := evidence.VerifySignature(pub[:31], signed, sig); err == nil {
		t.Error("short key accepted")
	}
}

func TestFromReport(t *testing.T) {
	r := &tes.Report{ReportID: "01a21a91-3713-746d-81f7-0f3139c91ba2", User: "police1", Plate: "34ABC123", Speed: 120,
		ObservedAt: time.Date(2026, 3, 14, 9, 26, 53, 999999999, time.FixedZone("X", 3600))}
	f := evidence.FromReport(r, "dev1")
	if want := time.Date(2026, 3, 14, 8, 26, 53, 0, time.UTC); !f.ObservedAt.Equal(want) || f.ObservedAt.Location() != time.UTC {
		t.Errorf("ObservedAt = %v, want %v (whole seconds, UTC)", f.ObservedAt, want)
	}
	if _, err := evidence.Encode(f); err != nil {
		t.Errorf("a validated report does not encode: %v", err)
	}
}

// FuzzDecode: Decode never panics, and what it accepts re-encodes to the
// same bytes (no malleability).
func FuzzDecode(f *testing.F) {
	f.Add(golden())
	g := sampleFields()
	g.SpeedLimit, g.Location, g.ObservedAt = 0, "", time.Time{}
	enc, _ := evidence.Encode(g)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, err := evidence.Decode(b)
		if err != nil {
			var fe *evidence.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode error %T is not a *FieldError", err)
			}
			return
		}
		again, err := evidence.Encode(fields)
		if err != nil {
			t.Fatalf("Decode accepted what Encode refuses: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("Encode(Decode(b)) = %x, want %x", again, b)
		}
	})
}
