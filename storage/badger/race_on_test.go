//go:build race

package badger

// raceEnabled: the race detector slows the code down several times, so
// tests do not hold it to time bounds.
const raceEnabled = true
