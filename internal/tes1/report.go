package tes1

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
)

// reportPlain is the DATA plaintext. The original sends {"plate", "speed"};
// TES clients may add the optional fields. Speed is decoded loosely because
// the original applies Python int() to it: 120, "120" and 120.0 are all 120.
type reportPlain struct {
	Plate      json.RawMessage `json:"plate"`
	Speed      json.RawMessage `json:"speed"`
	SpeedLimit json.RawMessage `json:"speed_limit"`
	ReportID   *string         `json:"report_id"`
	ObservedAt *string         `json:"observed_at"`
	Location   *string         `json:"location"`
}

// ParseReport decodes and validates a DATA plaintext into r's fields. Errors
// are EINVALID with a message that names the field.
func ParseReport(plain []byte) (*tes.Report, error) {
	var p reportPlain
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, tes.Errorf(tes.EINVALID, "Invalid report: not a JSON object with plate and speed.")
	}
	r := &tes.Report{}
	if len(p.Plate) == 0 || p.Plate[0] != '"' {
		return nil, tes.Errorf(tes.EINVALID, "Invalid plate: it must be a string.")
	}
	if err := json.Unmarshal(p.Plate, &r.Plate); err != nil {
		return nil, tes.Errorf(tes.EINVALID, "Invalid plate: it must be a string.")
	}
	var err error
	if len(p.Speed) == 0 {
		return nil, tes.Errorf(tes.EINVALID, "Invalid speed: missing.")
	}
	if r.Speed, err = pyInt(p.Speed, "speed"); err != nil {
		return nil, err
	}
	if len(p.SpeedLimit) > 0 && string(p.SpeedLimit) != "null" {
		if r.SpeedLimit, err = pyInt(p.SpeedLimit, "speed_limit"); err != nil {
			return nil, err
		}
	}
	if p.ReportID != nil {
		r.ReportID = *p.ReportID
	}
	if p.Location != nil {
		r.Location = *p.Location
	}
	if p.ObservedAt != nil && *p.ObservedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, *p.ObservedAt)
		if err != nil {
			return nil, tes.Errorf(tes.EINVALID, "Invalid observed_at: use RFC 3339, e.g. 2026-01-02T15:04:05Z.")
		}
		r.ObservedAt = t
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// pyInt accepts what Python's int() accepts for a JSON value and the
// validation allows: an integer, an integral float, or a string of digits.
func pyInt(raw json.RawMessage, field string) (int, error) {
	bad := tes.Errorf(tes.EINVALID, "Invalid %s: must be a whole number of km/h.", field)
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, bad
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, bad
		}
		return n, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, bad
	}
	return int(f), nil
}

// AppendReport appends r as a DATA plaintext in the original's format, with
// the optional fields only when set, so that the original server still
// parses it.
func AppendReport(dst []byte, r *tes.Report) []byte {
	dst = append(dst, `{"plate": `...)
	dst = AppendPyString(dst, r.Plate)
	dst = append(dst, `, "speed": `...)
	dst = appendPyInt(dst, r.Speed)
	if r.ReportID != "" {
		dst = append(dst, `, "report_id": `...)
		dst = AppendPyString(dst, r.ReportID)
	}
	if r.SpeedLimit > 0 {
		dst = append(dst, `, "speed_limit": `...)
		dst = appendPyInt(dst, r.SpeedLimit)
	}
	if r.Location != "" {
		dst = append(dst, `, "location": `...)
		dst = AppendPyString(dst, r.Location)
	}
	if !r.ObservedAt.IsZero() {
		dst = append(dst, `, "observed_at": `...)
		dst = AppendPyString(dst, r.ObservedAt.UTC().Format(time.RFC3339))
	}
	return append(dst, '}')
}

// AppendLogin appends the LOGIN plaintext as the original writes it.
func AppendLogin(dst []byte, user, password string) []byte {
	dst = append(dst, `{"username": `...)
	dst = AppendPyString(dst, user)
	dst = append(dst, `, "password": `...)
	dst = AppendPyString(dst, password)
	return append(dst, '}')
}
