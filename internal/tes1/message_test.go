package tes1_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
)

// vectors is the pycryptodome interop file (testdata/legacy).
type vectors struct {
	ServerRSA struct {
		PrivateDER string `json:"private_der_pkcs1_hex"`
		PublicPEM  string `json:"public_pem_spki"`
	} `json:"server_rsa"`
	ClientRSA struct {
		PrivateDER string `json:"private_der_pkcs1_hex"`
		PublicPEM  string `json:"public_pem_spki"`
	} `json:"client_rsa"`
	SessionDESKey string            `json:"session_des_key"`
	Wire          map[string]string `json:"wire_messages"`
}

func mustVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile("../../testdata/legacy/pycryptodome_interop.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// Our encoder writes the original's replies byte for byte.
func TestAppendMessageMatchesPython(t *testing.T) {
	v := mustVectors(t)
	for _, tc := range []struct{ name, typ, payload string }{
		{"session_ok_server_to_client", "OK", "Session Ready"},
		{"login_ok_server_to_client", "OK", "Login Successful"},
		{"login_fail_server_to_client", "ERROR", "Invalid Credentials"},
		{"data_ok_server_to_client", "OK", "Message Queued for Processing"},
		{"unauthorized_server_to_client", "ERROR", "Unauthorized"},
		{"handshake_server_to_client", "HANDSHAKE", v.ServerRSA.PublicPEM},
	} {
		got := string(tes1.AppendMessage(nil, tc.typ, tc.payload, ""))
		if want := v.Wire[tc.name]; got != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
	// Re-encoding the client's messages from their parsed fields gives the same bytes.
	for _, name := range []string{"session_client_to_server", "login_client_to_server", "data_client_to_server"} {
		m, err := tes1.ParseMessage([]byte(v.Wire[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		p, _ := m.PayloadString()
		sig := ""
		if m.Signature != nil {
			sig = *m.Signature
		}
		if got := string(tes1.AppendMessage(nil, m.Type, p, sig)); got != v.Wire[name] {
			t.Errorf("%s re-encoded:\n got %s\nwant %s", name, got, v.Wire[name])
		}
	}
}

func TestAppendPyString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{`a"b\c`, `"a\"b\\c"`},
		{"line\nnext\r\t\b\f", `"line\nnext\r\t\b\f"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"<&>/", `"<&>/"`},
		{"Ümlaut €", `"\u00dcmlaut \u20ac"`},
		{"😀", `"\ud83d\ude00"`},
	} {
		if got := string(tes1.AppendPyString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendPyString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		// And it is valid JSON that decodes back.
		var back string
		if err := json.Unmarshal(tes1.AppendPyString(nil, tc.in), &back); err != nil || back != tc.in {
			t.Errorf("round trip of %q = %q, %v", tc.in, back, err)
		}
	}
}

func TestFrameReader(t *testing.T) {
	a := `{"type": "LOGIN", "payload": "ab}{\"cd"}`
	b := `{"type": "DATA", "payload": "x", "signature": "y", "nested": {"k": [1, {"z": "]"}]}}`
	for _, tc := range []struct {
		name string
		r    io.Reader
	}{
		{"coalesced", strings.NewReader(a + b)},
		{"whitespace between", strings.NewReader("\n " + a + "\r\n\t" + b + "\n")},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(a + b))},
		{"half reads", iotest.HalfReader(strings.NewReader(a + b))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := tes1.NewFrameReader(tc.r, 0)
			for _, want := range []string{a, b} {
				got, err := fr.Next()
				if err != nil || string(got) != want {
					t.Fatalf("Next() = %q, %v; want %q", got, err, want)
				}
			}
			if _, err := fr.Next(); err != io.EOF {
				t.Fatalf("after last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameReaderErrors(t *testing.T) {
	big := `{"type": "DATA", "payload": "` + strings.Repeat("a", 100) + `"}`
	for _, tc := range []struct {
		name, in string
		max      int
		want     error
	}{
		{"too large", big, 64, tes1.ErrTooLarge},
		{"too large unterminated", `{"a": "` + strings.Repeat("b", 200), 64, tes1.ErrTooLarge},
		{"not an object", `["type"]`, 0, tes1.ErrMalformed},
		{"garbage", "\x00\x01binary", 0, tes1.ErrMalformed},
		{"truncated", `{"type": "DA`, 0, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tes1.NewFrameReader(strings.NewReader(tc.in), tc.max).Next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Next() error = %v, want %v", err, tc.want)
			}
		})
	}
	// A frame exactly at the limit is fine.
	if _, err := tes1.NewFrameReader(strings.NewReader(big), len(big)).Next(); err != nil {
		t.Fatalf("frame of exactly max bytes: %v", err)
	}
}

func TestParseMessage(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"type": "DATA", "payload": "00", "signature": "11"}`, true},
		{`{"type": "SESSION", "payload": {"encrypted_key": "x"}}`, true},
		{`{"payload": "x"}`, false},
		{`{"type": 5, "payload": "x"}`, false},
		{`{"type": "DATA", "payload": "x", "signature": 7}`, false},
		{"{\"type\": \"DATA\", \"payload\": \"\xff\"}", false},
		{`{"type": "DATA",}`, false},
	} {
		_, err := tes1.ParseMessage([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ParseMessage(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		in      string
		plate   string
		speed   int
		wantErr string
	}{
		{`{"plate": "34ABC123", "speed": 120}`, "34ABC123", 120, ""},
		{`{"plate": " ab-12 c ", "speed": "95"}`, "AB-12 C", 95, ""},
		{`{"plate": "X1", "speed": 88.0}`, "X1", 88, ""},
		{`{"plate": "X1", "speed": 500}`, "X1", 500, ""},
		{`{"plate": "X1", "speed": "fast"}`, "", 0, "Invalid speed"},
		{`{"plate": "X1", "speed": 88.5}`, "", 0, "Invalid speed"},
		{`{"plate": "X1", "speed": -1}`, "", 0, "Invalid speed"},
		{`{"plate": "X1", "speed": 501}`, "", 0, "Invalid speed"},
		{`{"plate": "X1"}`, "", 0, "Invalid speed"},
		{`{"plate": 12, "speed": 50}`, "", 0, "Invalid plate"},
		{`{"plate": "", "speed": 50}`, "", 0, "Invalid plate"},
		{`{"plate": "ABCDEFGHIJKLMNOPQ", "speed": 50}`, "", 0, "Invalid plate"},
		{`{"plate": "AB<script>", "speed": 50}`, "", 0, "Invalid plate"},
		{`{"plate": "X1", "speed": 50, "report_id": "nope"}`, "", 0, "Invalid report_id"},
		{`{"plate": "X1", "speed": 50, "observed_at": "yesterday"}`, "", 0, "Invalid observed_at"},
		{`[1,2]`, "", 0, "Invalid report"},
	} {
		r, err := tes1.ParseReport([]byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || tes.ErrorCode(err) != tes.EINVALID || !strings.Contains(tes.ErrorMessage(err), tc.wantErr) {
				t.Errorf("ParseReport(%s) error = %v, want EINVALID containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || r.Plate != tc.plate || r.Speed != tc.speed {
			t.Errorf("ParseReport(%s) = %+v, %v; want plate %q speed %d", tc.in, r, err, tc.plate, tc.speed)
		}
	}
}

func TestAppendReportRoundTrip(t *testing.T) {
	in := &tes.Report{ReportID: tes.NewReportID(), Plate: "34ABC123", Speed: 120, SpeedLimit: 90, Location: "E5 km 12 \"north\""}
	b := tes1.AppendReport(nil, in)
	if !bytes.HasPrefix(b, []byte(`{"plate": "34ABC123", "speed": 120, "report_id": "`)) {
		t.Fatalf("plaintext does not start like the original's: %s", b)
	}
	out, err := tes1.ParseReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.ReportID != in.ReportID || out.Plate != in.Plate || out.Speed != in.Speed || out.SpeedLimit != in.SpeedLimit || out.Location != in.Location {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestFrameReaderNesting(t *testing.T) {
	for _, in := range []string{`{]`, `{"a": [}`, `{"a": {"b": ]}}`, `{` + strings.Repeat(`"a": {`, 40) + strings.Repeat("}", 41)} {
		if _, err := tes1.NewFrameReader(strings.NewReader(in), 0).Next(); !errors.Is(err, tes1.ErrMalformed) {
			t.Errorf("Next(%.30q) = %v, want ErrMalformed", in, err)
		}
	}
}
