package tracking

// ReadRollups sets whether the store reads metric buckets from the rollups
// (the default) or from the points, for a benchmark that compares both.
// Set it before the store is shared.
func (s *Store) ReadRollups(on bool) { s.pointsOnly = !on }
