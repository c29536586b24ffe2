package tenancy

import "time"

// SetHAClock sets the clock of t.
func SetHAClock(t *HATracker, now func() time.Time) { t.now = now }
