package tenancy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestShareOf: the parts of all pods add up to the limit; an even split
// under uniform overload; pods asking less than an even part get what they
// ask (plus their reserve) and the others share the rest; spare capacity
// is split evenly.
func TestShareOf(t *testing.T) {
	const limit = 100_000.0
	parts := func(demand ...float64) []float64 {
		out := make([]float64, len(demand))
		sum := 0.0
		for i := range demand {
			out[i] = shareOf(limit, demand, i)
			sum += out[i]
		}
		require.InDelta(t, limit, sum, 1e-6, "demand %v: parts %v", demand, out)
		return out
	}
	reserve := limit * reserveFraction

	p := parts(1e9, 1e9, 1e9)
	require.InDelta(t, limit/3, p[0], 1e-6)

	p = parts(1e9, 1e9, 1e3) // one pod asks little: it gets it, the others split the rest
	require.InDelta(t, reserve/3+1e3, p[2], 1e-6)
	require.InDelta(t, p[0], p[1], 1e-6)

	p = parts(60_000, 30_000, 5_000) // less than the limit together: each its demand plus the spare evenly
	spare := limit - reserve - 95_000
	require.InDelta(t, reserve/3+60_000+spare/3, p[0], 1e-6)
	require.InDelta(t, reserve/3+5_000+spare/3, p[2], 1e-6)

	p = parts(0, 0, 0) // nobody asks: even
	require.InDelta(t, limit/3, p[1], 1e-6)

	p = parts(1e9, 0) // an idle pod keeps its reserve, never zero
	require.InDelta(t, reserve/2, p[1], 1e-6)
	require.Greater(t, p[1], 0.0)

	p = parts(500)
	require.InDelta(t, limit, p[0], 1e-6)

	p = parts(90_000, 50_000, 20_000, 1_000) // water-filling: the two small ones get theirs
	require.InDelta(t, reserve/4+1_000, p[3], 1e-6)
	require.InDelta(t, reserve/4+20_000, p[2], 1e-6)
	require.InDelta(t, p[0], p[1], 1e-6)
}
