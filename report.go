package tes

import (
	"crypto/rand"
	"strings"
	"time"
)

// Limits on report fields.
const (
	MaxPlateLen    = 16
	MaxSpeed       = 500
	MaxLocationLen = 200
)

// Report is a violation as a reporting unit sends it, before it is stored.
type Report struct {
	ReportID   string // optional UUID; see ValidateReportID
	Plate      string
	Speed      int
	SpeedLimit int
	Location   string
	ObservedAt time.Time
	User       string
	Suite      string
	Evidence   Evidence
}

// NormalizePlate upper-cases and trims a plate and validates it: 1-16 of
// A-Z, 0-9, space and dash, with no leading, trailing or doubled spaces.
func NormalizePlate(p string) (string, error) {
	p = strings.ToUpper(strings.TrimSpace(p))
	if p == "" {
		return "", Errorf(EINVALID, "Invalid plate: it is empty.")
	}
	if len(p) > MaxPlateLen {
		return "", Errorf(EINVALID, "Invalid plate: at most %d characters.", MaxPlateLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '-') {
			return "", Errorf(EINVALID, "Invalid plate: only letters A-Z, digits, space and dash are allowed.")
		}
		if c == ' ' && p[i-1] == ' ' {
			return "", Errorf(EINVALID, "Invalid plate: doubled space.")
		}
	}
	return p, nil
}

// ValidateSpeed checks a speed in km/h: an integer from 0 to 500.
func ValidateSpeed(s int) error {
	if s < 0 || s > MaxSpeed {
		return Errorf(EINVALID, "Invalid speed: must be 0 to %d km/h.", MaxSpeed)
	}
	return nil
}

// ValidateReportID accepts "" or a canonical UUID (8-4-4-4-12 hex, any case)
// and returns it lower-cased.
func ValidateReportID(id string) (string, error) {
	if id == "" {
		return "", nil
	}
	if len(id) != 36 {
		return "", Errorf(EINVALID, "Invalid report_id: must be a UUID.")
	}
	b := []byte(strings.ToLower(id))
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", Errorf(EINVALID, "Invalid report_id: must be a UUID.")
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", Errorf(EINVALID, "Invalid report_id: must be a UUID.")
			}
		}
	}
	return string(b), nil
}

// Validate normalises r in place and checks every field, returning the first
// problem as an EINVALID error whose message names the field.
func (r *Report) Validate() error {
	p, err := NormalizePlate(r.Plate)
	if err != nil {
		return err
	}
	r.Plate = p
	if err := ValidateSpeed(r.Speed); err != nil {
		return err
	}
	if r.SpeedLimit < 0 || r.SpeedLimit > MaxSpeed {
		return Errorf(EINVALID, "Invalid speed_limit: must be 0 to %d km/h.", MaxSpeed)
	}
	r.Location = strings.TrimSpace(r.Location)
	if len(r.Location) > MaxLocationLen {
		return Errorf(EINVALID, "Invalid location: at most %d bytes.", MaxLocationLen)
	}
	for _, c := range r.Location {
		if c < 0x20 || c == 0x7f {
			return Errorf(EINVALID, "Invalid location: control characters are not allowed.")
		}
	}
	if id, err := ValidateReportID(r.ReportID); err != nil {
		return err
	} else {
		r.ReportID = id
	}
	return nil
}

// NewReportID returns a random, time-ordered UUID (version 7, RFC 9562)
// for a report, so that resending it after a lost acknowledgement stores it
// only once. Time order keeps the store's report_id index appending at its
// end instead of writing a random page per report.
func NewReportID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&15])
	}
	return string(out)
}
