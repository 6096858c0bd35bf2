package auth

import "time"

// SetNow sets the clock tokens are checked against.
func SetNow(t *Tokens, now func() time.Time) { t.now = now }
