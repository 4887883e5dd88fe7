package tes1

import (
	"io"

	"github.com/tes-traffic/tes"
)

// ParseReportJSON is ParseReport decoding everything with encoding/json,
// the reference FuzzParseReport holds its direct paths to.
func ParseReportJSON(plain []byte) (*tes.Report, error) { return parseReport(plain, false) }

// NewRefFrameReader is the byte-at-a-time frame reader FuzzFrameReader
// holds NewFrameReader to.
func NewRefFrameReader(r io.Reader, max int) interface{ Next() ([]byte, error) } {
	return newRefFrameReader(r, max)
}
