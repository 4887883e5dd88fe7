// Package evidence is what makes a TLS-suite report evidence a third party
// can check: the canonical encoding a device signs, the verification of
// that signature, and the self-contained evidence file (`tes evidence
// export` and `tes evidence verify`).
//
// # Canonical encoding, version 1
//
// A report's signed bytes are nine fields, each a 4-byte big-endian length
// followed by that many bytes, in this order, with nothing before, between
// or after them:
//
//	#  field        content
//	0  version      the 15 ASCII bytes "tes-evidence-v1"
//	1  report_id    36 bytes: the lower-case UUID (8-4-4-4-12)
//	2  device_id    1-64 bytes of a-z, A-Z, 0-9, '.', '_', '-'
//	3  user         1-64 bytes, as tes.ValidateUsername allows
//	4  plate        1-16 bytes, normalised as tes.NormalizePlate returns it
//	5  speed        4 bytes: unsigned big-endian km/h, 0-500
//	6  speed_limit  4 bytes: unsigned big-endian km/h, 0-500 (0: not reported)
//	7  location     0-200 bytes of UTF-8 without control characters, trimmed
//	8  observed_at  8 bytes: signed big-endian unix seconds; 0 bytes when
//	                not reported
//
// Encode refuses values outside these rules and Decode refuses any byte
// string that Encode would not produce, so a report has exactly one
// encoding and Decode(b) re-encodes to b. The leading version field keeps
// the encoding apart from every other message the same key signs (a TLS 1.3
// CertificateVerify starts with 64 spaces), and a later version changes it.
//
// # Evidence file, format tes-evidence-file/1
//
// One JSON document, written with two-space indentation, keys in the order
// below, no HTML escaping, a final newline; binary values are standard
// base64 with padding; times are RFC 3339 in UTC ("" when absent):
//
//	{
//	  "format": "tes-evidence-file/1",
//	  "violation": { the record: id, report_id, plate, speed, speed_limit,
//	                 location, observed_at, received_at, reported_by,
//	                 device_id, suite, signature_verified_at_ingest, status,
//	                 decided_by, decided_at, reject_reason, reject_note,
//	                 points_applied },
//	  "evidence": {  what the reporting unit signed:
//	    "algorithm":  "Ed25519" (TLS suite), "RSASSA-PKCS1-v1_5-SHA256"
//	                  (TES/1) or "none",
//	    "signed":     TLS: the canonical encoding above;
//	                  TES/1: the DATA message's IV || DES ciphertext,
//	    "signature":  the device's or client's signature over "signed",
//	    "key_fingerprint": "SHA256:..." of the signer's SubjectPublicKeyInfo,
//	    "certificate_chain": TLS: [device certificate, CA certificate],
//	    "public_key": TES/1: the client's SubjectPublicKeyInfo },
//	  "seal": {      the officer's signature over everything above:
//	    "algorithm": "Ed25519", "exported_at": time,
//	    "signed":    "tes-evidence-seal-v1\n" followed by the compact JSON
//	                 {"format", "violation", "evidence", "exported_at"},
//	    "signature": the officer signing key's signature over "signed",
//	    "certificate_chain": [officer signing certificate, CA certificate] }
//	}
//
// Verify accepts only a file byte for byte in this form, so that every
// changed byte is found: the seal names any field that differs from what
// the officer sealed, and the device signature ties the report's fields to
// the device's certified key.
package evidence

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tes-traffic/tes"
)

// Version is the first field of every version-1 encoding.
const Version = "tes-evidence-v1"

// MaxEncodedLen bounds an encoding: every field at its longest.
const MaxEncodedLen = 9*4 + len(Version) + 36 + 64 + 64 + tes.MaxPlateLen + 4 + 4 + tes.MaxLocationLen + 8

// FieldNames are the names of the nine fields, in order.
var FieldNames = [9]string{"version", "report_id", "device_id", "user", "plate", "speed", "speed_limit", "location", "observed_at"}

// Fields are the signed facts of one report.
type Fields struct {
	ReportID   string
	DeviceID   string
	User       string
	Plate      string
	Speed      int
	SpeedLimit int
	Location   string
	ObservedAt time.Time // zero when not reported; whole seconds, UTC
}

// FromReport takes the signed fields from a validated report sent by
// deviceID. ObservedAt is truncated to whole seconds, as the wire carries it.
func FromReport(r *tes.Report, deviceID string) *Fields {
	f := &Fields{ReportID: r.ReportID, DeviceID: deviceID, User: r.User, Plate: r.Plate,
		Speed: r.Speed, SpeedLimit: r.SpeedLimit, Location: r.Location}
	if !r.ObservedAt.IsZero() {
		f.ObservedAt = time.Unix(r.ObservedAt.Unix(), 0).UTC()
	}
	return f
}

// FieldError says which field of an encoding is wrong.
type FieldError struct {
	Field string
	Why   string
}

func (e *FieldError) Error() string { return "evidence: field " + e.Field + ": " + e.Why }

// check validates f against the encoding's rules.
func (f *Fields) check() error {
	if id, err := tes.ValidateReportID(f.ReportID); err != nil || id != f.ReportID || id == "" {
		return &FieldError{"report_id", "not a lower-case UUID"}
	}
	if !validDeviceID(f.DeviceID) {
		return &FieldError{"device_id", "must be 1-64 of a-z, A-Z, 0-9, '.', '_', '-'"}
	}
	if tes.ValidateUsername(f.User) != nil {
		return &FieldError{"user", "not a valid user name"}
	}
	if p, err := tes.NormalizePlate(f.Plate); err != nil || p != f.Plate {
		return &FieldError{"plate", "not a normalised plate"}
	}
	if f.Speed < 0 || f.Speed > tes.MaxSpeed {
		return &FieldError{"speed", "out of range"}
	}
	if f.SpeedLimit < 0 || f.SpeedLimit > tes.MaxSpeed {
		return &FieldError{"speed_limit", "out of range"}
	}
	if err := checkLocation(f.Location); err != nil {
		return err
	}
	if !f.ObservedAt.IsZero() && (f.ObservedAt.Nanosecond() != 0 || f.ObservedAt.Location() != time.UTC) {
		return &FieldError{"observed_at", "must be whole seconds in UTC"}
	}
	return nil
}

func validDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkLocation(s string) error {
	if len(s) > tes.MaxLocationLen || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return &FieldError{"location", "must be at most 200 bytes of trimmed UTF-8 without control characters"}
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return &FieldError{"location", "must be at most 200 bytes of trimmed UTF-8 without control characters"}
		}
	}
	return nil
}

// Encode returns the canonical encoding of f, or a *FieldError naming the
// first field that breaks the rules.
func Encode(f *Fields) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, 160+len(f.Location))
	put := func(b []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	put([]byte(Version))
	put([]byte(f.ReportID))
	put([]byte(f.DeviceID))
	put([]byte(f.User))
	put([]byte(f.Plate))
	put(binary.BigEndian.AppendUint32(nil, uint32(f.Speed)))
	put(binary.BigEndian.AppendUint32(nil, uint32(f.SpeedLimit)))
	put([]byte(f.Location))
	if f.ObservedAt.IsZero() {
		put(nil)
	} else {
		put(binary.BigEndian.AppendUint64(nil, uint64(f.ObservedAt.Unix())))
	}
	return out, nil
}

// Decode parses a canonical encoding, strictly: every length is checked
// against what is left before a field is read, and the result must be
// valid and re-encode to b. Errors are *FieldError values.
func Decode(b []byte) (*Fields, error) {
	if len(b) > MaxEncodedLen {
		return nil, &FieldError{"version", fmt.Sprintf("encoding is %d bytes, more than the %d a valid one can have", len(b), MaxEncodedLen)}
	}
	var raw [9][]byte
	rest := b
	for i, name := range FieldNames {
		if len(rest) < 4 {
			return nil, &FieldError{name, "truncated before its length"}
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, &FieldError{name, fmt.Sprintf("length %d exceeds the %d bytes left", n, len(rest))}
		}
		raw[i], rest = rest[:n], rest[n:]
	}
	if len(rest) != 0 {
		return nil, &FieldError{"observed_at", fmt.Sprintf("%d bytes follow the last field", len(rest))}
	}
	if string(raw[0]) != Version {
		return nil, &FieldError{"version", fmt.Sprintf("%q is not %q", raw[0], Version)}
	}
	for _, i := range []int{5, 6} {
		if len(raw[i]) != 4 {
			return nil, &FieldError{FieldNames[i], "must be 4 bytes"}
		}
	}
	f := &Fields{
		ReportID:   string(raw[1]),
		DeviceID:   string(raw[2]),
		User:       string(raw[3]),
		Plate:      string(raw[4]),
		Speed:      int(binary.BigEndian.Uint32(raw[5]) & 0x7fffffff),
		SpeedLimit: int(binary.BigEndian.Uint32(raw[6]) & 0x7fffffff),
		Location:   string(raw[7]),
	}
	if binary.BigEndian.Uint32(raw[5])>>31 != 0 {
		return nil, &FieldError{"speed", "out of range"}
	}
	if binary.BigEndian.Uint32(raw[6])>>31 != 0 {
		return nil, &FieldError{"speed_limit", "out of range"}
	}
	switch len(raw[8]) {
	case 0:
	case 8:
		f.ObservedAt = time.Unix(int64(binary.BigEndian.Uint64(raw[8])), 0).UTC()
		if f.ObservedAt.IsZero() { // the one instant that would mean "absent"
			return nil, &FieldError{"observed_at", "is the zero time"}
		}
	default:
		return nil, &FieldError{"observed_at", "must be 0 or 8 bytes"}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// Diff returns the name of the first field where f and g differ, "" if none.
func (f *Fields) Diff(g *Fields) string {
	switch {
	case f.ReportID != g.ReportID:
		return "report_id"
	case f.DeviceID != g.DeviceID:
		return "device_id"
	case f.User != g.User:
		return "user"
	case f.Plate != g.Plate:
		return "plate"
	case f.Speed != g.Speed:
		return "speed"
	case f.SpeedLimit != g.SpeedLimit:
		return "speed_limit"
	case f.Location != g.Location:
		return "location"
	case !f.ObservedAt.Equal(g.ObservedAt):
		return "observed_at"
	}
	return ""
}

// ErrBadSignature is returned by VerifySignature for a signature that does
// not verify.
var ErrBadSignature = errors.New("evidence: Ed25519 signature does not verify")

// VerifySignature is the one Ed25519 verification path of the TLS suite and
// of `tes evidence verify`: the key and signature lengths are checked, then
// crypto/ed25519 verifies as RFC 8032 says (it refuses an S that is not
// reduced, so a signature cannot be altered into another valid one).
func VerifySignature(pub, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("evidence: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadSignature, len(sig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		return ErrBadSignature
	}
	return nil
}

// Sign encodes f and signs it with key, returning the signed bytes and the
// signature.
func Sign(key ed25519.PrivateKey, f *Fields) (signed, sig []byte, err error) {
	signed, err = Encode(f)
	if err != nil {
		return nil, nil, err
	}
	return signed, ed25519.Sign(key, signed), nil
}
