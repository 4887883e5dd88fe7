package tlssuite

import (
	"bytes"
	"encoding/base64"
	"io"
	"testing"

	"github.com/tes-traffic/tes/internal/tes1"
)

// FuzzParseData feeds arbitrary bytes through the server's decoding path
// for one connection: framing (tes1.FrameReader with the suite's size
// limit), message parsing, then the DATA and ENROLL decoders. Nothing may
// panic; a DATA message that decodes is a valid report with a report_id
// and a 64-byte signature, and every refusal carries a reply text.
func FuzzParseData(f *testing.F) {
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64))
	f.Add(tes1.AppendMessage(nil, tes1.TypeData, `{"plate": "34ABC123", "speed": 120, "report_id": "01a21a91-3713-746d-81f7-0f3139c91ba2", "speed_limit": 90, "location": "E5 km 12", "observed_at": "2026-03-14T09:26:53Z"}`, sig))
	f.Add(tes1.AppendMessage(nil, tes1.TypeData, `{"plate": "AB1", "speed": "99"}`, sig))
	f.Add(tes1.AppendMessage(nil, TypeEnroll, `{"token_id":"0123456789abcdef","csr":"AAAA","proof":"`+sig+`"}`, ""))
	f.Add([]byte(`{"type": "DATA", "payload": {"plate": 1}, "signature": null}{"type":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := tes1.NewFrameReader(bytes.NewReader(b), MaxMessage)
		for {
			frame, err := fr.Next()
			if err != nil {
				if err == io.EOF || len(frame) == 0 {
					return
				}
				t.Fatalf("frame and error: %q, %v", frame, err)
			}
			if len(frame) > MaxMessage {
				t.Fatalf("frame of %d bytes passed the %d limit", len(frame), MaxMessage)
			}
			m, err := tes1.ParseMessage(frame)
			if err != nil {
				continue
			}
			if m.Type == TypeEnroll {
				if req, err := parseEnroll(m); err == nil && (len(req.TokenID) != 16 || len(req.Proof) != 64 || len(req.CSR) == 0) {
					t.Fatalf("parseEnroll accepted %+v", req)
				}
				continue
			}
			r, sig, err := ParseData(m)
			if err != nil {
				if ReplyText(err) == "" {
					t.Fatalf("refusal without a reply text: %v", err)
				}
				continue
			}
			if len(sig) != 64 || r.ReportID == "" {
				t.Fatalf("ParseData accepted sig %d bytes, report_id %q", len(sig), r.ReportID)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("ParseData returned an invalid report: %v", err)
			}
		}
	})
}
