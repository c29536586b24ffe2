package remoteread

import (
	"bytes"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeReadRequest feeds arbitrary bodies to the request decoder and
// what follows it (matchers, hints, negotiation): nothing may panic, and
// the decoder must respect its size bound. (Re-encoding is not checked:
// gogo-generated prompb does not round-trip out-of-range packed enums.)
func FuzzDecodeReadRequest(f *testing.F) {
	for _, req := range []*prompb.ReadRequest{
		{},
		{Queries: []*prompb.Query{{StartTimestampMs: 1, EndTimestampMs: 2, Matchers: []*prompb.LabelMatcher{{Name: "__name__", Value: "up"}}}}},
		{Queries: []*prompb.Query{{Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "job", Value: ".+"}}, Hints: &prompb.ReadHints{StepMs: 15000, Func: "rate"}}},
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS}},
	} {
		b, err := req.Marshal()
		require.NoError(f, err)
		f.Add(snappy.Encode(nil, b))
	}
	f.Add([]byte("\xff\xff\xff\xff\x0f"))
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeReadRequest(body, max)
		if err != nil {
			return
		}
		if n, err := snappy.DecodedLen(body); err == nil {
			require.LessOrEqual(t, n, max)
		}
		cfg := DefaultConfig()
		cfg.MaxQueriesPerRequest, cfg.MaxMatchersPerRequest = 4, 8
		if err := cfg.checkRequest(req); err == nil {
			n := 0
			for _, q := range req.Queries {
				n += len(q.Matchers)
			}
			require.LessOrEqual(t, len(req.Queries), 4)
			require.LessOrEqual(t, n, 8)
		}
		for _, q := range req.Queries {
			qp, err := selectParams(q)
			if err == nil {
				require.Len(t, qp.matchers, len(q.Matchers))
			}
		}
		if typ, err := negotiateResponseType(req.AcceptedResponseTypes); err == nil {
			require.Contains(t, []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS}, typ)
		}
	})
}

// FuzzChunkedReader feeds arbitrary streams to the frame reader: it must
// not panic, never return a frame above its limit, and end with io.EOF or
// an error.
func FuzzChunkedReader(f *testing.F) {
	var buf bytes.Buffer
	cw := newChunkedWriter(&buf)
	require.NoError(f, cw.writeFrame([]byte("hello")))
	require.NoError(f, cw.writeFrame(bytes.Repeat([]byte{7}, 300)))
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		const limit = 1024
		cr := NewChunkedReader(bytes.NewReader(stream), limit)
		for range len(stream) + 1 {
			b, err := cr.Next()
			if err != nil {
				return // io.EOF or an error: both end the stream
			}
			require.LessOrEqual(t, len(b), limit)
		}
		t.Fatal("more frames than bytes")
	})
}
