package storage

import "time"

// Active series, one definition on both backends (docs/operations.md,
// "Limits across pods"): a series is active when it has a sample
// timestamped at or after the start of the clock hour (UTC) holding
// now - window, so it counts for between window and window + 1h after its
// last sample. Whole hours make the count exact from ClickHouse's series
// table (a row per series and hour with samples), tenant-wide across pods.

// DefaultActiveSeriesWindow is the default of --storage.active-series-window.
const DefaultActiveSeriesWindow = time.Hour

// ActiveSince is the earliest sample timestamp (ms) of an active series at
// now, for window (DefaultActiveSeriesWindow when 0).
func ActiveSince(now time.Time, window time.Duration) int64 {
	if window <= 0 {
		window = DefaultActiveSeriesWindow
	}
	return now.Add(-window).Truncate(time.Hour).UnixMilli()
}
