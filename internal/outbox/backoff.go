package outbox

import "time"

// Default retry timing: the first retry after about a second, doubling up
// to a minute, so a unit on a flaky network reconnects quickly while a
// server that is down for an hour sees one attempt a minute per unit.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// Backoff returns how long to wait after the n-th consecutive failure
// (n >= 1): min·2^(n-1), capped at max, then scaled by a jitter factor
// from [0.5, 1) taken from jitter (a number in [0, 1)), so that many units
// that lost the same server do not all come back in the same second.
// n < 1 returns 0.
func Backoff(n int, min, max time.Duration, jitter float64) time.Duration {
	if n < 1 {
		return 0
	}
	if min <= 0 {
		min = DefaultMinBackoff
	}
	if max < min {
		max = min
	}
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if jitter < 0 {
		jitter = 0
	} else if jitter >= 1 {
		jitter = 0.999999
	}
	return time.Duration(float64(d) * (0.5 + jitter/2))
}
