package bench

import "time"

// SetSessionPrepareMax sets how many SESSION requests a duration-only
// sessions run prepares, and returns a func that restores it.
func SetSessionPrepareMax(n int) (restore func()) {
	old := sessionPrepareMax
	sessionPrepareMax = n
	return func() { sessionPrepareMax = old }
}

// SetCalibrateFor sets how long each calibration of a sessions run lasts,
// and returns a func that restores it.
func SetCalibrateFor(d time.Duration) (restore func()) {
	old := calibrateFor
	calibrateFor = d
	return func() { calibrateFor = old }
}
