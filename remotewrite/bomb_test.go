package remotewrite

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// Decompression bombs of issue #10: small snappy blocks of a few MiB whose
// every few bytes, decoded naively, become a large structure. Each is
// answered at once, and while answering it the heap grows by a small
// multiple of the decompressed size: about 1 when the bomb is refused at
// its first empty structure (20 to 130 before), and for bombs of tiny
// but valid structures, at most twice the decoded bytes per byte its
// protocol allows (the arenas grow by copying), plus the body.

// bombSize is the decompressed size of each bomb.
const bombSize = 4 << 20

// repeat returns unit repeated to fill about n bytes.
func repeat(unit []byte, n int) []byte { return bytes.Repeat(unit, n/len(unit)) }

// peakHeapGrowth runs f and returns how much the live heap grew above
// where it started, at most, sampling it while f runs.
//
// It collects garbage often meanwhile (GOGC=10), so that what it measures
// is close to the live heap, not to garbage awaiting the next cycle.
func peakHeapGrowth(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	f()
	close(done)
	<-sampled
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
		peak.Store(ms.HeapAlloc - base)
	}
	return peak.Load()
}

func TestDecodeBombs(t *testing.T) {
	name := pb{}.bytes(1, []byte("__name__")).bytes(2, []byte("up"))
	okSample := pb{}.tag(1, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).tag(2, wireVarint).varint(1_700_000_000_000)
	// One 2.0 series of inner, with the symbols "" and "a".
	v2 := func(inner pb) []byte { return pb{}.bytes(4, nil).bytes(4, []byte("a")).bytes(5, inner) }
	const refused = 2 // the bomb is refused at its first fault: the heap holds it, decompressed, and little more
	// Not empty, but tiny: refused once they take more than the decoded
	// bytes per byte of their protocol, or what the per-request limits
	// allow, whichever comes first.
	const bounded1, bounded2 = 2 + 2*rw1BytesPerByte, 2 + 2*rw2BytesPerByte
	for _, tc := range []struct {
		name  string
		v2    bool
		data  []byte
		bound float64 // how many times its size the heap may grow by while the bomb is answered
	}{
		// 2 bytes each, 96 bytes decoded.
		{"1.0 empty series", false, repeat(pb{}.bytes(1, nil), bombSize), refused},
		// 2 bytes each, 32 bytes decoded.
		{"1.0 empty labels", false, pb{}.bytes(1, repeat(pb{}.bytes(1, nil), bombSize)), refused},
		// 2 bytes each, 24 bytes decoded.
		{"1.0 empty samples", false, pb{}.bytes(1, append(pb{}.bytes(1, name), repeat(pb{}.bytes(2, nil), bombSize)...)), refused},
		// 5 bytes each, 32 bytes decoded; but a label without a value
		// is no label, dropped as the Validator does.
		{"1.0 labels without values", false, pb{}.bytes(1, append(pb{}.bytes(2, okSample), repeat(pb{}.bytes(1, pb{}.bytes(1, []byte("a"))), bombSize)...)), refused},
		// 8 bytes each, 32 bytes decoded.
		{"1.0 tiny labels", false, pb{}.bytes(1, append(pb{}.bytes(2, okSample), repeat(pb{}.bytes(1, pb{}.bytes(1, []byte("a")).bytes(2, []byte("b"))), bombSize)...)), bounded1},
		// 15 bytes each, 152 bytes decoded.
		{"1.0 tiny series", false, repeat(pb{}.bytes(1, pb{}.bytes(1, pb{}.bytes(1, []byte("a")).bytes(2, []byte("b"))).bytes(2, pb{}.tag(2, wireVarint).varint(1))), bombSize), bounded1},
		{"2.0 empty series", true, repeat(pb{}.bytes(5, nil), bombSize), refused},
		{"2.0 empty samples", true, v2(append(pb{}.tag(1, wireBytes).varint(2).raw(1, 0), repeat(pb{}.bytes(2, nil), bombSize)...)), refused},
		// One byte each, 4 bytes as a reference and 16 as half a label.
		{"2.0 label references", true, v2(pb{}.tag(1, wireBytes).varint(bombSize).raw(make([]byte, bombSize)...)), bounded2},
		// Unpacked references: 2 bytes each.
		{"2.0 unpacked label references", true, v2(repeat(pb{}.tag(1, wireVarint).varint(1), bombSize)), bounded2},
		// 2 bytes each, a 16-byte string header.
		{"2.0 empty symbols", true, repeat(pb{}.bytes(4, nil), bombSize), refused},
		// 3 bytes each, a 16-byte string header: taken (a table of
		// symbols without series stores nothing), within bounds.
		{"2.0 tiny symbols", true, append(pb{}.bytes(4, nil), repeat(pb{}.bytes(4, []byte("a")), bombSize)...), bounded2},
		// Histograms (issue #11). 2 bytes each, 8 decoded: refused past
		// --ingest.max-buckets-per-histogram.
		{"1.0 millions of empty spans", false, pb{}.bytes(1, append(pb{}.bytes(1, name), pb{}.bytes(4, repeat(pb{}.bytes(fieldHistPosSpans, nil), bombSize))...)), refused},
		// One byte each, 8 decoded.
		{"1.0 millions of deltas", false, pb{}.bytes(1, append(pb{}.bytes(1, name), pb{}.bytes(4, pb{}.bytes(fieldHistPosDeltas, make([]byte, bombSize)))...)), refused},
		{"1.0 empty histograms", false, pb{}.bytes(1, append(pb{}.bytes(1, name), repeat(pb{}.bytes(4, nil), bombSize)...)), refused},
		// 4 bytes each, a whole histogram decoded.
		{"1.0 tiny histograms", false, pb{}.bytes(1, append(pb{}.bytes(1, name), repeat(pb{}.bytes(4, pb{}.tag(fieldHistCountInt, wireVarint).varint(1)), bombSize)...)), bounded1},
		// Many histograms of many small spans each: within the bucket
		// limit, bounded by the bytes per byte.
		{"1.0 histograms of empty spans", false, pb{}.bytes(1, append(pb{}.bytes(1, name), repeat(pb{}.bytes(4, repeat(pb{}.bytes(fieldHistNegSpans, nil), 2000)), bombSize)...)), bounded1},
		{"1.0 empty exemplars", false, pb{}.bytes(1, append(pb{}.bytes(1, name), repeat(pb{}.bytes(3, nil), bombSize)...)), refused},
		// 11 bytes each, an exemplar decoded.
		{"1.0 tiny exemplars", false, pb{}.bytes(1, append(pb{}.bytes(2, okSample), append(pb{}.bytes(1, name), repeat(pb{}.bytes(3, pb{}.tag(2, wireFixed64).raw(0, 0, 0, 0, 0, 0, 0xf0, 0x3f)), bombSize)...)...)), bounded1},
		// 5 bytes each (an empty label): 32 bytes decoded.
		{"1.0 exemplars of empty labels", false, pb{}.bytes(1, append(pb{}.bytes(1, name), pb{}.bytes(3, repeat(pb{}.bytes(1, nil), bombSize))...)), bounded1},
		// 4 bytes each, a metadata entry decoded.
		{"1.0 tiny metadata", false, repeat(pb{}.bytes(3, pb{}.tag(1, wireVarint).varint(1)), bombSize), bounded1},
		{"2.0 millions of empty spans", true, v2(append(pb{}.tag(1, wireBytes).varint(2).raw(1, 0), pb{}.bytes(3, repeat(pb{}.bytes(fieldHistPosSpans, nil), bombSize))...)), refused},
		{"2.0 tiny histograms", true, v2(append(pb{}.tag(1, wireBytes).varint(2).raw(1, 0), repeat(pb{}.bytes(3, pb{}.tag(fieldHistCountInt, wireVarint).varint(1)), bombSize)...)), bounded2},
		// One byte each, a reference and half a label decoded.
		{"2.0 exemplar label references", true, v2(append(pb{}.tag(1, wireBytes).varint(2).raw(1, 0), pb{}.bytes(4, pb{}.bytes(1, make([]byte, bombSize)))...)), bounded2},
		// 6 bytes each (one label, one sample), 152 bytes decoded.
		{"2.0 tiny series", true, append(pb{}.bytes(4, nil).bytes(4, []byte("a")), repeat(pb{}.bytes(5, pb{}.tag(1, wireBytes).varint(2).raw(1, 1).bytes(2, pb{}.tag(3, wireVarint).varint(1))), bombSize)...), bounded2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, nil)
			h := newWrite(testConfig(t), store, nil, nil, prometheus.NewRegistry())
			body := snappy.Encode(nil, tc.data)
			var w *httptest.ResponseRecorder
			grew := peakHeapGrowth(func() {
				if tc.v2 {
					w = postV2(h, &writer, body, nil)
				} else {
					w = post(h, &writer, body, nil)
				}
			})
			t.Logf("%d bytes (%d compressed): %d, heap grew by %d bytes (%.1fx): %s",
				len(tc.data), len(body), w.Code, grew, float64(grew)/float64(len(tc.data)), w.Body.String())
			if tc.bound == refused {
				require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}, w.Code, w.Body.String())
			}
			require.Less(t, float64(grew), tc.bound*float64(len(tc.data)),
				"the heap grew by %.1f times the decompressed size", float64(grew)/float64(len(tc.data)))
			require.Empty(t, readBack(t, store, writer.Tenant))
		})
	}
}
