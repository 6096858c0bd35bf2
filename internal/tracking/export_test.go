package tracking

// ReadRollups sets whether metric buckets are read from the rollups, for a
// benchmark that compares both ways; it returns the undo.
func ReadRollups(on bool) func() {
	was := readRollups
	readRollups = on
	return func() { readRollups = was }
}
