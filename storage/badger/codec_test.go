package badger

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

// TestAppendHistogramMatchesRecord holds the WAL's histogram encoders to
// the bytes of Prometheus' record.EncodeHistogram and EncodeFloatHistogram,
// which the WAL's decoder reads.
func TestAppendHistogramMatchesRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var hs []*histogram.Histogram
	var fhs []*histogram.FloatHistogram
	for i := range 20 {
		hs = append(hs, tsdbutil.GenerateTestHistogram(int64(i)), tsdbutil.GenerateTestCustomBucketsHistogram(int64(i)),
			tsdbutil.GenerateTestGaugeHistogram(int64(i)))
		fhs = append(fhs, tsdbutil.GenerateTestFloatHistogram(int64(i)), tsdbutil.GenerateTestCustomBucketsFloatHistogram(int64(i)),
			tsdbutil.GenerateTestGaugeFloatHistogram(int64(i)))
	}
	hs = append(hs, &histogram.Histogram{}, &histogram.Histogram{Sum: math.Float64frombits(value.StaleNaN)},
		&histogram.Histogram{Schema: histogram.CustomBucketsSchema, CustomValues: []float64{}})
	fhs = append(fhs, &histogram.FloatHistogram{}, &histogram.FloatHistogram{Sum: math.Float64frombits(value.StaleNaN)})
	// Values of every varint length, both signs.
	big := func() int64 { return r.Int64() >> r.IntN(64) * (1 - 2*int64(r.IntN(2))) }
	for range 500 {
		h := &histogram.Histogram{
			CounterResetHint: histogram.CounterResetHint(r.IntN(4)), Schema: int32(r.IntN(13)) - 4,
			ZeroThreshold: r.Float64(), ZeroCount: uint64(big()), Count: uint64(big()), Sum: r.NormFloat64() * 1e6,
		}
		if r.IntN(5) == 0 {
			h.Schema = histogram.CustomBucketsSchema
			for range r.IntN(5) {
				h.CustomValues = append(h.CustomValues, r.Float64())
			}
		}
		for range r.IntN(4) {
			h.PositiveSpans = append(h.PositiveSpans, histogram.Span{Offset: int32(big()), Length: uint32(big())})
			h.NegativeSpans = append(h.NegativeSpans, histogram.Span{Offset: int32(big()), Length: uint32(r.IntN(3))})
		}
		for range r.IntN(30) {
			h.PositiveBuckets = append(h.PositiveBuckets, big())
			h.NegativeBuckets = append(h.NegativeBuckets, big())
		}
		hs = append(hs, h)
		fhs = append(fhs, h.ToFloat(nil))
	}
	for _, h := range hs {
		want := encoding.Encbuf{B: []byte{7}}
		record.EncodeHistogram(&want, h)
		require.Equal(t, want.B, appendHistogram([]byte{7}, h), "%v", h)
	}
	for _, fh := range fhs {
		want := encoding.Encbuf{B: []byte{7}}
		record.EncodeFloatHistogram(&want, fh)
		require.Equal(t, want.B, appendFloatHistogram([]byte{7}, fh), "%v", fh)
	}
}

// TestHistCopies holds the appender's copies to what Copy makes, and to
// staying put while the slab grows.
func TestHistCopies(t *testing.T) {
	var c histCopies
	for round := range 3 {
		var got []*histogram.Histogram
		var gotF []*histogram.FloatHistogram
		var want []*histogram.Histogram
		var wantF []*histogram.FloatHistogram
		for i := range 3000 {
			h := tsdbutil.GenerateTestHistogram(int64(i + round))
			if i%7 == 0 {
				h = tsdbutil.GenerateTestCustomBucketsHistogram(int64(i))
			}
			fh := tsdbutil.GenerateTestFloatHistogram(int64(i + round))
			want, wantF = append(want, h.Copy()), append(wantF, fh.Copy())
			got, gotF = append(got, c.histogram(h)), append(gotF, c.floatHistogram(fh))
			h.PositiveBuckets[0]++ // the caller reuses its histogram
			fh.PositiveBuckets[0]++
		}
		for i := range got {
			require.Equal(t, want[i], got[i])
			require.Equal(t, wantF[i], gotF[i])
		}
		c.reset()
	}
}

// BenchmarkEncodeHistogram compares the WAL's histogram encoder with
// record.EncodeHistogram on the histograms of BenchmarkAppendHistograms.
func BenchmarkEncodeHistogram(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	models := newHistModels(100)
	var hs []*histogram.Histogram
	for range 10 {
		for i := range models {
			hs = append(hs, models[i].next(r))
		}
	}
	buf := make([]byte, 0, 1<<20)
	b.Run("record", func(b *testing.B) {
		for b.Loop() {
			e := encoding.Encbuf{B: buf[:0]}
			for _, h := range hs {
				record.EncodeHistogram(&e, h)
			}
		}
	})
	b.Run("wal", func(b *testing.B) {
		for b.Loop() {
			out := buf[:0]
			for _, h := range hs {
				out = appendHistogram(out, h)
			}
		}
	})
}

// TestHistogramsValidatedIsPerAppender: an appender told its caller checks
// the histograms skips its own check, and the next appender (the pool
// hands the same one out again) checks them again.
func TestHistogramsValidatedIsPerAppender(t *testing.T) {
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	for range 3 {
		app := s.ForTenant("a").AppenderV2(context.Background())
		app.(interface{ HistogramsValidated() }).HistogramsValidated()
		_, err := app.Append(0, labels.FromStrings("__name__", "good"), 0, 1000, 0, testHistogram(0, 1), nil, promstorage.AOptions{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())

		bad := testHistogram(0, 1)
		bad.PositiveBuckets = bad.PositiveBuckets[1:]
		app = s.ForTenant("a").AppenderV2(context.Background())
		_, err = app.Append(0, labels.FromStrings("__name__", "bad"), 0, 1000, 0, bad, nil, promstorage.AOptions{})
		require.ErrorIs(t, err, histogram.ErrHistogramSpansBucketsMismatch)
		require.NoError(t, app.Rollback())
	}
}
