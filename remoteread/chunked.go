package remoteread

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/gogo/protobuf/proto"
)

// The framing of streamed responses (Prometheus storage/remote/chunked.go):
// each frame is a uvarint length, the big-endian CRC-32 (Castagnoli) of
// the data, and the data, a marshalled prompb.ChunkedReadResponse.

// castagnoli is the CRC-32C table. crc32.MakeTable of Castagnoli returns
// the package's own lazily built table, safe for concurrent use.
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// chunkedWriter writes frames to w.
type chunkedWriter struct {
	w     io.Writer
	table *crc32.Table
	hdr   [binary.MaxVarintLen64 + 4]byte
}

func newChunkedWriter(w io.Writer) *chunkedWriter {
	return &chunkedWriter{w: w, table: castagnoli()}
}

// writeFrame writes b as one frame.
func (c *chunkedWriter) writeFrame(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n := binary.PutUvarint(c.hdr[:], uint64(len(b)))
	binary.BigEndian.PutUint32(c.hdr[n:], crc32.Checksum(b, c.table))
	if _, err := c.w.Write(c.hdr[:n+4]); err != nil {
		return err
	}
	_, err := c.w.Write(b)
	return err
}

// ChunkedReader reads the frames of a streamed remote-read response. It
// holds one frame at a time, at most sizeLimit bytes.
type ChunkedReader struct {
	r         *bufio.Reader
	sizeLimit uint64
	data      []byte
	table     *crc32.Table
}

// NewChunkedReader returns a reader of the frames in r, refusing frames
// larger than sizeLimit bytes.
func NewChunkedReader(r io.Reader, sizeLimit uint64) *ChunkedReader {
	return &ChunkedReader{r: bufio.NewReader(r), sizeLimit: sizeLimit, table: castagnoli()}
}

// ErrChecksum is returned for a frame whose data does not match its CRC.
var ErrChecksum = errors.New("chunked remote-read frame: checksum mismatch")

// Next returns the data of the next frame, valid until the next call, or
// io.EOF after the last one (io.ErrUnexpectedEOF for a truncated frame).
func (c *ChunkedReader) Next() ([]byte, error) {
	size, err := binary.ReadUvarint(c.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("chunked remote-read frame size: %w", err)
	}
	if size > c.sizeLimit {
		return nil, fmt.Errorf("chunked remote-read frame of %d bytes exceeds the limit of %d bytes", size, c.sizeLimit)
	}
	var sum [4]byte
	if _, err := io.ReadFull(c.r, sum[:]); err != nil {
		return nil, unexpectedEOF(err)
	}
	if uint64(cap(c.data)) < size {
		c.data = make([]byte, size)
	}
	c.data = c.data[:size]
	if _, err := io.ReadFull(c.r, c.data); err != nil {
		return nil, unexpectedEOF(err)
	}
	if crc32.Checksum(c.data, c.table) != binary.BigEndian.Uint32(sum[:]) {
		return nil, ErrChecksum
	}
	return c.data, nil
}

// NextProto decodes the next frame into pb.
func (c *ChunkedReader) NextProto(pb proto.Message) error {
	b, err := c.Next()
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, pb)
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
