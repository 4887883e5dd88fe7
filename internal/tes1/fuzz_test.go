package tes1_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
)

// FuzzFrameReader: any byte stream yields frames that are exactly the
// balanced objects in it, or a documented error; never a panic, never a
// frame over the limit.
func FuzzFrameReader(f *testing.F) {
	for _, s := range []string{
		`{"type": "DATA", "payload": "00", "signature": "11"}`,
		`{"type": "LOGIN", "payload": "a}b{\"c"}{"type": "X"}`,
		"  \n{}\t{}",
		`{"a": [1, {"b": "]"}]}`,
		`{"unterminated": "`,
		"\x00\xff{",
		`[]`,
	} {
		f.Add([]byte(s), 64)
	}
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = max%4096 + 2
		if max < 2 {
			max += 4096
		}
		fr := tes1.NewFrameReader(bytes.NewReader(data), max)
		ref := tes1.NewRefFrameReader(bytes.NewReader(data), max)
		for i := 0; i < 1000; i++ {
			frame, err := fr.Next()
			want, wantErr := ref.Next()
			if !bytes.Equal(frame, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("frame %d: %q, %v; the byte-at-a-time reader: %q, %v", i, frame, err, want, wantErr)
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, tes1.ErrTooLarge) && !errors.Is(err, tes1.ErrMalformed) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(frame) > max || frame[0] != '{' || frame[len(frame)-1] != '}' {
				t.Fatalf("frame %q (limit %d)", frame, max)
			}
			// Whatever the frame is, parsing it never panics.
			tes1.ParseMessage(frame)
		}
	})
}

// FuzzParseReport: the DATA plaintext parser accepts only valid reports,
// and its direct paths decide exactly as encoding/json does.
func FuzzParseReport(f *testing.F) {
	for _, s := range []string{
		`{"plate": "34ABC123", "speed": 120}`,
		`{"plate": "ab 12", "speed": "95", "speed_limit": 50, "location": "x", "observed_at": "2026-01-02T03:04:05Z", "report_id": "0190c5d2-0000-7000-8000-000000000001"}`,
		`{"plate": 1, "speed": 1e400}`,
		`{"plate": "X", "speed": -0.0}`,
		`{"plate": "X", "speed": "  7 "}`,
		`{"plate": "X", "speed": -0}`,
		`{"plate": "X", "speed": 0120}`,
		`{"plate": "X", "speed": 1000000000}`,
		`{"plate": "X", "speed": 10000000000}`,
		`{"plate": "X", "speed": 90, "speed": 91}`,
		`{"Plate": "X", "speed": 90}`,
		`{"plate": "X\"Y", "speed": 90, "location": "a\\b\nc"}`,
		`{"plate": "X\u0041", "speed": 90}`,
		"{\"plate\": \"X\xff\", \"speed\": 90}",
		`{"plate": "X", "speed": 90, "location": null}`,
		`{"plate": "X", "speed": 90} `,
		`{"plate": "X","speed": 90}`,
		`{"plate": "X", "speed": 90,}`,
		`{"plate": "X", "speed": "9\u0030"}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		r, err := tes1.ParseReport(plain)
		ref, refErr := tes1.ParseReportJSON(plain)
		if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() ||
			err == nil && !reflect.DeepEqual(r, ref) {
			t.Fatalf("%q: ParseReport = %+v, %v; encoding/json = %+v, %v", plain, r, err, ref, refErr)
		}
		if err != nil {
			if tes.ErrorCode(err) != tes.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		// An accepted report is valid, and re-encoding it parses to the same.
		c := *r
		if err := c.Validate(); err != nil || c.Plate != r.Plate || c.Location != r.Location || c.ReportID != r.ReportID {
			t.Fatalf("accepted report %+v does not validate: %v", r, err)
		}
		back, err := tes1.ParseReport(tes1.AppendReport(nil, r))
		if err != nil || back.Plate != r.Plate || back.Speed != r.Speed || back.SpeedLimit != r.SpeedLimit ||
			back.Location != r.Location || back.ReportID != r.ReportID || !back.ObservedAt.Equal(r.ObservedAt.Truncate(1e9)) {
			t.Fatalf("round trip of %+v = %+v, %v", r, back, err)
		}
	})
}
