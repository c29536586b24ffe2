package remotewrite

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/golang/snappy"
	"github.com/stretchr/testify/require"
)

// snappyBody returns the decoded length and the elements of a snappy
// block, for decodeSnappy.
func snappyBody(t testing.TB, block []byte) (int, []byte) {
	n, header := binary.Uvarint(block)
	require.Positive(t, header)
	return int(n), block[header:]
}

func TestDecodeSnappy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 300_000)
	for i := range random {
		random[i] = byte(r.IntN(256))
	}
	text := bytes.Repeat([]byte("http_requests_total{job=\"api\",instance=\"10.0.0.1:9090\"} "), 5_000)
	for name, src := range map[string][]byte{
		"empty":           {},
		"one byte":        {7},
		"random":          random,
		"text":            text,
		"period 1":        bytes.Repeat([]byte{0}, 1<<20),
		"period 2":        bytes.Repeat([]byte{0x0a, 0x00}, 1<<19),
		"period 6":        bytes.Repeat([]byte{0x0a, 0x04, 0x0a, 0x00, 0x12, 0x00}, 100_000),
		"long literal":    random[:70_000],
		"mixed, 3 blocks": append(append(slices.Clone(text), random[:100_000]...), text...),
	} {
		t.Run(name, func(t *testing.T) {
			n, body := snappyBody(t, snappy.Encode(nil, src))
			dst := make([]byte, n)
			require.NoError(t, decodeSnappy(dst, body))
			require.Equal(t, src, dst)
		})
	}

	// Elements the snappy package's encoder does not write: a copy with a
	// 4-byte offset, and literals with 3- and 4-byte lengths.
	t.Run("copy4 and long literal lengths", func(t *testing.T) {
		lit := random[:5]
		block := []byte{byte(62 << 2), 4, 0, 0} // literal of 5 bytes, 3-byte length
		block = append(block, lit...)
		block = append(block, byte(63<<2), 4, 0, 0, 0) // literal of 5 bytes, 4-byte length
		block = append(block, lit...)
		block = append(block, byte((12-1)<<2|3), 10, 0, 0, 0) // copy 12 bytes from 10 back
		want := append(append(slices.Clone(lit), lit...), append(slices.Clone(lit), lit...)[:10]...)
		want = append(want, want[:2]...)
		dst := make([]byte, len(want))
		require.NoError(t, decodeSnappy(dst, block))
		require.Equal(t, want, dst)
		got, err := snappy.Decode(nil, append(binary.AppendUvarint(nil, uint64(len(want))), block...))
		require.NoError(t, err)
		require.Equal(t, got, dst)
	})

	for name, block := range map[string][]byte{
		"copy before the start": {byte(1 << 2), 'a', byte((4-4)<<2 | 1), 2},
		"copy offset 0":         {0, 'a', byte((4-4)<<2 | 1), 0},
		"literal past the end":  {byte(9 << 2), 'a'},
		"truncated copy":        {0, 'a', 2, 1},
		"short output":          {0, 'a'},
	} {
		t.Run("corrupt: "+name, func(t *testing.T) {
			dst := make([]byte, 8)
			require.ErrorIs(t, decodeSnappy(dst, block), errSnappyCorrupt)
			_, err := snappy.Decode(nil, append(binary.AppendUvarint(nil, 8), block...))
			require.Error(t, err, "the reference decoder accepts it")
		})
	}
}

// FuzzDecodeSnappy checks decodeSnappy against the snappy package's
// decoder: the same blocks decode, to the same bytes.
func FuzzDecodeSnappy(f *testing.F) {
	f.Add(snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 1000)))
	f.Add(snappy.Encode(nil, []byte("abcabcabcabcabcabc hello hello hello")))
	f.Add([]byte{8, 0, 'a', 1 << 2, 'b', 'c'})
	f.Fuzz(func(t *testing.T, block []byte) {
		n, err := snappy.DecodedLen(block)
		if err != nil || n > 1<<20 {
			return
		}
		want, wantErr := snappy.Decode(nil, block)
		_, header := binary.Uvarint(block)
		dst := make([]byte, n)
		gotErr := decodeSnappy(dst, block[header:])
		if wantErr != nil {
			require.Error(t, gotErr, "snappy refuses it: %v", wantErr)
			return
		}
		require.NoError(t, gotErr)
		require.True(t, bytes.Equal(want, dst), "decodes to other bytes than snappy's")
	})
}

func BenchmarkDecodeSnappy(b *testing.B) {
	for name, src := range map[string][]byte{
		"empty series bomb 64MiB": bytes.Repeat([]byte{0x0a, 0x00}, 32<<20),
		"text 4MiB":               bytes.Repeat([]byte("http_requests_total{job=\"api\",instance=\"10.0.0.1:9090\"} 17 "), 4<<20/60),
	} {
		block := snappy.Encode(nil, src)
		n, body := snappyBody(b, block)
		dst := make([]byte, n)
		b.Run(name+"/go", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if err := decodeSnappy(dst, body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/snappy", func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := snappy.Decode(dst, block); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
