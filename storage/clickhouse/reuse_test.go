package clickhouse

import (
	"math"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestAppendKeepsNoLabelMemory appends series whose label strings point
// into one buffer that is overwritten after each Append, as the
// remote-write decoder does; the stored series must keep their labels.
func TestAppendKeepsNoLabelMemory(t *testing.T) {
	s := newTestStore(t)
	ts := s.ForTenant("reuse")
	buf := make([]byte, 0, 64)
	var (
		b    labels.ScratchBuilder
		lset labels.Labels
	)
	app := ts.AppenderV2(t.Context())
	for i, v := range []string{"aaaa", "bbbb", "cccc"} {
		buf = append(buf[:0], "reused"...)
		buf = append(buf, v...)
		b.Reset()
		b.Add("__name__", unsafe.String(&buf[0], 6))
		b.Add("v", unsafe.String(&buf[6], 4))
		b.Overwrite(&lset) // lset's memory is reused on every series
		_, err := app.Append(0, lset, 0, 1000, float64(i), nil, nil, promstorage.AOptions{})
		require.NoError(t, err)
		copy(buf, "XXXXXXXXXX") // and so is the caller's buffer
	}
	require.NoError(t, app.Commit())
	q, err := ts.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	vals, _, err := q.LabelValues(t.Context(), "v", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "reused"))
	require.NoError(t, err)
	require.Equal(t, []string{"aaaa", "bbbb", "cccc"}, vals)
}
