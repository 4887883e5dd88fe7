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
func ParseReport(plain []byte) (*tes.Report, error) { return parseReport(plain, true) }

// parseReport is ParseReport; with direct false it decodes everything
// with encoding/json, the reference its direct paths are fuzzed against.
func parseReport(plain []byte, direct bool) (*tes.Report, error) {
	var p reportPlain
	if !direct || !p.parseCanonical(plain) {
		p = reportPlain{}
		if err := json.Unmarshal(plain, &p); err != nil {
			return nil, tes.Errorf(tes.EINVALID, "Invalid report: not a JSON object with plate and speed.")
		}
	}
	r := &tes.Report{}
	if len(p.Plate) == 0 || p.Plate[0] != '"' {
		return nil, tes.Errorf(tes.EINVALID, "Invalid plate: it must be a string.")
	}
	if s, ok := plainString(p.Plate); ok && direct {
		r.Plate = string(s)
	} else if err := json.Unmarshal(p.Plate, &r.Plate); err != nil {
		return nil, tes.Errorf(tes.EINVALID, "Invalid plate: it must be a string.")
	}
	var err error
	if len(p.Speed) == 0 {
		return nil, tes.Errorf(tes.EINVALID, "Invalid speed: missing.")
	}
	if r.Speed, err = pyInt(p.Speed, "speed", direct); err != nil {
		return nil, err
	}
	if len(p.SpeedLimit) > 0 && string(p.SpeedLimit) != "null" {
		if r.SpeedLimit, err = pyInt(p.SpeedLimit, "speed_limit", direct); err != nil {
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

// parseCanonical fills p without encoding/json when plain has the shape
// AppendReport and the original client's json.dumps write: one object
// whose keys are among the six known, each written exactly and once, with
// the separators ", " and ": "; every value a string with no escape but
// \", \\ and \n and no control character, or, for speed and speed_limit,
// an integer literal. The raw values alias plain. Anything else returns
// false, and ParseReport decodes it with encoding/json; FuzzParseReport
// checks that both give the same report.
func (p *reportPlain) parseCanonical(plain []byte) bool {
	rest, ok := bytes.CutPrefix(plain, []byte(`{`))
	if !ok {
		return false
	}
	var seen uint8
	for first := true; ; first = false {
		if !first {
			if len(rest) == 1 && rest[0] == '}' {
				return true
			}
			if rest, ok = bytes.CutPrefix(rest, []byte(`, `)); !ok {
				return false
			}
		}
		key, after, escaped, ok := cutSimpleString(rest)
		if !ok || escaped {
			return false
		}
		if rest, ok = bytes.CutPrefix(after, []byte(`: `)); !ok {
			return false
		}
		var bit uint8
		var raw *json.RawMessage
		var str **string
		switch string(key[1 : len(key)-1]) {
		case "plate":
			bit, raw = 1, &p.Plate
		case "speed":
			bit, raw = 2, &p.Speed
		case "speed_limit":
			bit, raw = 4, &p.SpeedLimit
		case "report_id":
			bit, str = 8, &p.ReportID
		case "observed_at":
			bit, str = 16, &p.ObservedAt
		case "location":
			bit, str = 32, &p.Location
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		var val []byte
		if len(rest) > 0 && rest[0] == '"' {
			if val, rest, _, ok = cutSimpleString(rest); !ok {
				return false
			}
		} else if bit == 2 || bit == 4 {
			if val, rest, ok = cutJSONInt(rest); !ok {
				return false
			}
		} else {
			return false
		}
		if raw != nil {
			*raw = val
			continue
		}
		s, ok := plainString(val)
		if !ok {
			return false
		}
		v := string(s)
		*str = &v
	}
}

// cutJSONInt cuts an integer literal, -?(0|[1-9][0-9]*), of at most ten
// digits from the front of b.
func cutJSONInt(b []byte) (lit, rest []byte, ok bool) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	digits := i - start
	if digits == 0 || digits > 10 || digits > 1 && b[start] == '0' {
		return nil, nil, false
	}
	return b[:i], b[i:], true
}

func badInt(field string) error {
	return tes.Errorf(tes.EINVALID, "Invalid %s: must be a whole number of km/h.", field)
}

// pyInt accepts what Python's int() accepts for a JSON value and the
// validation allows: an integer, an integral float, or a string of digits.
// direct lets plain integers and strings skip encoding/json.
func pyInt(raw json.RawMessage, field string, direct bool) (int, error) {
	raw = bytes.TrimSpace(raw)
	if lit, rest, ok := cutJSONInt(raw); ok && len(rest) == 0 && direct {
		// The common case, decoded as encoding/json would into a float64.
		n, err := strconv.Atoi(string(lit))
		if err != nil || n > 1e9 || n < -1e9 {
			return 0, badInt(field)
		}
		return n, nil
	}
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if b, ok := plainString(raw); ok && direct {
			s = string(b)
		} else if json.Unmarshal(raw, &s) != nil {
			return 0, badInt(field)
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, badInt(field)
		}
		return n, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1e9 {
		return 0, badInt(field)
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
