package tes

// Band gives Points to speeds in [Min, Max); Max 0 means no upper bound.
type Band struct {
	Min, Max int
	Points   int
}

// Rules is an ordered list of speed bands. The first band that contains the
// speed decides the points; a speed in no band earns none. Points are always
// computed on the server from the stored speed, never taken from a client.
type Rules struct {
	Bands []Band
}

// DefaultRules are the original report's bands: 50 <= s < 70 gives 10 points,
// 70 <= s < 100 gives 20, s >= 100 gives 50, anything else 0.
func DefaultRules() Rules {
	return Rules{Bands: []Band{
		{Min: 50, Max: 70, Points: 10},
		{Min: 70, Max: 100, Points: 20},
		{Min: 100, Max: 0, Points: 50},
	}}
}

// Points returns the points for speed. speedLimit is accepted so that
// limit-relative rule sets can be added without changing callers; the default
// bands, like the original's, use absolute speed only.
func (r Rules) Points(speed, speedLimit int) int {
	for _, b := range r.Bands {
		if speed >= b.Min && (b.Max == 0 || speed < b.Max) {
			return b.Points
		}
	}
	return 0
}
