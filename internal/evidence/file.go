package evidence

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
)

// FileFormat is the format of an evidence file.
const FileFormat = "tes-evidence-file/1"

// Algorithm names in an evidence file.
const (
	AlgEd25519 = "Ed25519"
	AlgRSA     = "RSASSA-PKCS1-v1_5-SHA256"
	AlgNone    = "none"
)

const sealPrefix = "tes-evidence-seal-v1\n"

// MaxFileSize bounds what Verify reads.
const MaxFileSize = 1 << 20

// File is an evidence file.
type File struct {
	Format    string    `json:"format"`
	Violation Record    `json:"violation"`
	Evidence  Signature `json:"evidence"`
	Seal      Seal      `json:"seal"`
}

// Record is the violation as the officer stores it. Times are strings so
// that the file holds exactly one spelling of each.
type Record struct {
	ID            int64  `json:"id"`
	ReportID      string `json:"report_id"`
	Plate         string `json:"plate"`
	Speed         int    `json:"speed"`
	SpeedLimit    int    `json:"speed_limit"`
	Location      string `json:"location"`
	ObservedAt    string `json:"observed_at"`
	ReceivedAt    string `json:"received_at"`
	ReportedBy    string `json:"reported_by"`
	DeviceID      string `json:"device_id"`
	Suite         string `json:"suite"`
	SigVerified   bool   `json:"signature_verified_at_ingest"`
	Status        string `json:"status"`
	DecidedBy     string `json:"decided_by"`
	DecidedAt     string `json:"decided_at"`
	RejectReason  string `json:"reject_reason"`
	RejectNote    string `json:"reject_note"`
	PointsApplied int    `json:"points_applied"`
}

// Signature is what the reporting unit signed, and with which key.
type Signature struct {
	Algorithm        string   `json:"algorithm"`
	Signed           string   `json:"signed"`
	Signature        string   `json:"signature"`
	KeyFingerprint   string   `json:"key_fingerprint"`
	CertificateChain []string `json:"certificate_chain"`
	PublicKey        string   `json:"public_key"`
}

// Seal is the officer's signature over the rest of the file.
type Seal struct {
	Algorithm        string   `json:"algorithm"`
	ExportedAt       string   `json:"exported_at"`
	Signed           string   `json:"signed"`
	Signature        string   `json:"signature"`
	CertificateChain []string `json:"certificate_chain"`
}

// statement is what the seal signs.
type statement struct {
	Format     string    `json:"format"`
	Violation  Record    `json:"violation"`
	Evidence   Signature `json:"evidence"`
	ExportedAt string    `json:"exported_at"`
}

// formatTime writes a time the one way the file allows.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTime reads a time written by formatTime; "" is the zero time.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || formatTime(t) != s {
		return time.Time{}, fail(field, "not an RFC 3339 time in UTC as the officer writes it")
	}
	return t, nil
}

var b64 = base64.StdEncoding

// Exporter builds evidence files from the store.
type Exporter struct {
	Violations interface {
		Violation(ctx context.Context, id int64) (*tes.Violation, error)
	}
	CA     *x509.Certificate
	Signer *ca.Signer
	Now    func() time.Time // nil: time.Now
}

// Export returns the evidence file of violation id. Errors: ENOTFOUND and
// store errors.
func (e *Exporter) Export(ctx context.Context, id int64) ([]byte, error) {
	v, err := e.Violations.Violation(ctx, id)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	return Build(v, e.CA, e.Signer, now())
}

// Build writes the evidence file of v, sealed by signer at time at.
func Build(v *tes.Violation, caCert *x509.Certificate, signer *ca.Signer, at time.Time) ([]byte, error) {
	f := File{Format: FileFormat, Violation: Record{
		ID: v.ID, ReportID: v.ReportID, Plate: v.Plate, Speed: v.Speed, SpeedLimit: v.SpeedLimit, Location: v.Location,
		ObservedAt: formatTime(v.ObservedAt), ReceivedAt: formatTime(v.ReceivedAt), ReportedBy: v.ReportedBy,
		DeviceID: v.Evidence.DeviceID, Suite: v.Suite, SigVerified: v.SigVerified, Status: string(v.Status),
		DecidedBy: v.DecidedBy, DecidedAt: formatTime(v.DecidedAt), RejectReason: string(v.RejectReason),
		RejectNote: v.RejectNote, PointsApplied: v.PointsApplied,
	}}
	ev := &v.Evidence
	sig := Signature{Algorithm: AlgNone, CertificateChain: []string{}}
	switch {
	case len(ev.Signature) == 0:
	case v.Suite == tes.SuiteTLS:
		sig.Algorithm = AlgEd25519
		sig.CertificateChain = []string{b64.EncodeToString(ev.PublicKey), b64.EncodeToString(caCert.Raw)}
	case v.Suite == tes.SuiteTES1:
		sig.Algorithm = AlgRSA
		sig.PublicKey = b64.EncodeToString(ev.PublicKey)
	default:
		return nil, fmt.Errorf("evidence: violation %d has a signature but suite %q", v.ID, v.Suite)
	}
	if sig.Algorithm != AlgNone {
		sig.Signed, sig.Signature, sig.KeyFingerprint = b64.EncodeToString(ev.Signed), b64.EncodeToString(ev.Signature), ev.KeyFingerprint
	}
	f.Evidence = sig
	exported := formatTime(at.Truncate(time.Second))
	st, err := json.Marshal(statement{Format: f.Format, Violation: f.Violation, Evidence: f.Evidence, ExportedAt: exported})
	if err != nil {
		return nil, err
	}
	signed := append([]byte(sealPrefix), st...)
	f.Seal = Seal{Algorithm: AlgEd25519, ExportedAt: exported, Signed: b64.EncodeToString(signed),
		Signature:        b64.EncodeToString(signer.Sign(signed)),
		CertificateChain: []string{b64.EncodeToString(signer.Cert.Raw), b64.EncodeToString(caCert.Raw)}}
	return encodeFile(&f)
}

// encodeFile is the one encoder of evidence files; Verify re-encodes with
// it and compares.
func encodeFile(f *File) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// allowedKeys is the file's schema, for naming an unknown key.
var allowedKeys = map[string][]string{
	"":          {"format", "violation", "evidence", "seal"},
	"violation": {"id", "report_id", "plate", "speed", "speed_limit", "location", "observed_at", "received_at", "reported_by", "device_id", "suite", "signature_verified_at_ingest", "status", "decided_by", "decided_at", "reject_reason", "reject_note", "points_applied"},
	"evidence":  {"algorithm", "signed", "signature", "key_fingerprint", "certificate_chain", "public_key"},
	"seal":      {"algorithm", "exported_at", "signed", "signature", "certificate_chain"},
}

// walkJSON visits every token of a JSON document with its path ("violation.plate",
// "seal.certificate_chain[1]") and the offset just past it; isKey is true for
// object keys. It stops when visit returns false or at the first error.
func walkJSON(data []byte, visit func(path string, tok json.Token, isKey bool, end int64) bool) {
	type frame struct {
		obj   bool
		base  string
		key   string
		idx   int
		inKey bool
	}
	join := func(base, key string) string {
		if base == "" {
			return key
		}
		return base + "." + key
	}
	var stack []*frame
	valuePath := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.obj {
			return join(f.base, f.key)
		}
		return f.base + "[" + strconv.Itoa(f.idx) + "]"
	}
	advance := func() {
		if len(stack) == 0 {
			return
		}
		if f := stack[len(stack)-1]; f.obj {
			f.inKey = true
		} else {
			f.idx++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		end := dec.InputOffset()
		var path string
		isKey := false
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				path = valuePath()
				stack = append(stack, &frame{obj: t == '{', base: path, inKey: t == '{'})
			default:
				path = stack[len(stack)-1].base
				stack = stack[:len(stack)-1]
				advance()
			}
		default:
			if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].inKey {
				f := stack[len(stack)-1]
				f.key, _ = tok.(string)
				f.inKey = false
				path, isKey = join(f.base, f.key), true
			} else {
				path = valuePath()
				advance()
			}
		}
		if !visit(path, tok, isKey, end) {
			return
		}
	}
}

// fieldAt names the field the byte at offset off belongs to. It follows
// the layout Build writes (one member or array element per line, two
// spaces of indentation per level, members in schema order), so that it
// names the field even when the changed byte broke the JSON or the key. A
// line's leading newline counts as the line's.
func fieldAt(data []byte, off int64) string {
	type container struct {
		path string
		n    int // members or elements seen
	}
	stack := []*container{{}} // stack[d] holds the members at depth d+1
	last := map[int]string{}  // the last member path seen at each depth
	for start := 0; start <= len(data); {
		end := bytes.IndexByte(data[start:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += start
		}
		line := data[start:end]
		ind := 0
		for ind < len(line) && !bytes.ContainsRune([]byte(`"{}[]`), rune(line[ind])) && !isIdent(line[ind]) {
			ind++
		}
		trimmed, depth := bytes.TrimRight(line[ind:], ","), ind/2
		path := ""
		switch {
		case depth == 0:
		case len(trimmed) > 0 && (trimmed[0] == '}' || trimmed[0] == ']'):
			if depth < len(stack) {
				path = stack[depth].path
				stack = stack[:depth]
			}
		default:
			for len(stack) < depth { // an opening bracket was changed
				stack = append(stack, &container{path: last[len(stack)]})
			}
			parent := stack[depth-1]
			var name string
			if arrays[parent.path] {
				name = "[" + strconv.Itoa(parent.n) + "]"
			} else if keys := allowedKeys[parent.path]; parent.n < len(keys) {
				name = keys[parent.n]
			} else {
				name = "?"
			}
			parent.n++
			if name[0] == '[' || parent.path == "" {
				path = parent.path + name
			} else {
				path = parent.path + "." + name
			}
			last[depth] = path
			stack = stack[:depth]
			if n := len(trimmed); n > 0 && (trimmed[n-1] == '{' || trimmed[n-1] == '[') {
				stack = append(stack, &container{path: path})
			}
		}
		if off < int64(end) {
			if path == "" {
				return "file"
			}
			return path
		}
		start = end + 1
	}
	return "file"
}

// arrays are the file's array members.
var arrays = map[string]bool{"evidence.certificate_chain": true, "seal.certificate_chain": true}

func isIdent(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' }

// unknownKey returns the path of the first key the schema does not have.
func unknownKey(data []byte) string {
	found := ""
	walkJSON(data, func(path string, tok json.Token, isKey bool, _ int64) bool {
		if !isKey {
			return true
		}
		parent, key := "", path
		if i := bytes.LastIndexByte([]byte(path), '.'); i >= 0 {
			parent, key = path[:i], path[i+1:]
		}
		for _, k := range allowedKeys[parent] {
			if k == key {
				return true
			}
		}
		found = path
		return false
	})
	return found
}
