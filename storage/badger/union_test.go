package badger

import (
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// TestUnionBitmap checks the bitmap union of many postings against the
// sorting one, with gaps in the ids and lists that overlap.
func TestUnionBitmap(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	tn := newTenant("t", 1)
	id := uint64(100)
	for range 5000 {
		id += 1 + uint64(r.IntN(3))
		tn.all = append(tn.all, newSeries(id, labels.EmptyLabels()))
	}
	for _, k := range []int{2, 10, 100} {
		lists := make([][]*series, k)
		for _, s := range tn.all {
			for i := range lists {
				if r.IntN(k) == 0 || i == int(s.id)%k {
					lists[i] = append(lists[i], s)
				}
			}
		}
		want := union(lists)
		got := tn.unionLocked(lists)
		require.Equal(t, want, got)
	}
}
