package tes1

import "github.com/tes-traffic/tes"

// ParseReportJSON is ParseReport decoding everything with encoding/json,
// the reference FuzzParseReport holds its direct paths to.
func ParseReportJSON(plain []byte) (*tes.Report, error) { return parseReport(plain, false) }
