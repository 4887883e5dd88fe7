package bench

// SetSessionPrepareMax sets how many SESSION requests a duration-only
// sessions run prepares, and returns a func that restores it.
func SetSessionPrepareMax(n int) (restore func()) {
	old := sessionPrepareMax
	sessionPrepareMax = n
	return func() { sessionPrepareMax = old }
}
