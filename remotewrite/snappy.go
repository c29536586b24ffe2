package remotewrite

import (
	"encoding/binary"
	"errors"
)

// errSnappyCorrupt is a snappy block that does not decode.
var errSnappyCorrupt = errors.New("corrupt input")

// snappyAsmMax is the largest decompressed size left to the snappy
// package's decoder. Its amd64 and arm64 decoders are assembly, which Go
// cannot preempt: a 64 MiB body of short back-references keeps a core, and
// any garbage collection waiting to stop the world, for 35 to 65 ms. Real
// batches are far smaller; larger bodies go through decodeSnappy, in Go,
// which the scheduler preempts like any loop, so one tenant's large write
// does not stall the queries of the others.
const snappyAsmMax = 1 << 20

// decodeSnappy decodes the snappy block src into dst, whose length must be
// the block's decoded length, and src without its varint length header.
// It follows the block format of github.com/google/snappy's
// format_description.txt: literals and back-references of 1, 2 and 4
// byte offsets.
func decodeSnappy(dst, src []byte) error {
	d, s := 0, 0
	for s < len(src) {
		tag := src[s]
		var length, offset int
		switch tag & 3 {
		case 0: // literal
			x := uint32(tag >> 2)
			switch {
			case x < 60:
				s++
			case x == 60:
				s += 2
				if s > len(src) {
					return errSnappyCorrupt
				}
				x = uint32(src[s-1])
			case x == 61:
				s += 3
				if s > len(src) {
					return errSnappyCorrupt
				}
				x = uint32(binary.LittleEndian.Uint16(src[s-2:]))
			case x == 62:
				s += 4
				if s > len(src) {
					return errSnappyCorrupt
				}
				x = uint32(src[s-3]) | uint32(src[s-2])<<8 | uint32(src[s-1])<<16
			default:
				s += 5
				if s > len(src) {
					return errSnappyCorrupt
				}
				x = binary.LittleEndian.Uint32(src[s-4:])
			}
			length = int(x) + 1
			if length <= 0 || length > len(dst)-d || length > len(src)-s {
				return errSnappyCorrupt
			}
			copy(dst[d:], src[s:s+length])
			d += length
			s += length
			continue
		case 1:
			s += 2
			if s > len(src) {
				return errSnappyCorrupt
			}
			length = 4 + int(tag>>2)&7
			offset = int(uint32(tag&0xe0)<<3 | uint32(src[s-1]))
		case 2:
			s += 3
			if s > len(src) {
				return errSnappyCorrupt
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint16(src[s-2:]))
		default:
			s += 5
			if s > len(src) {
				return errSnappyCorrupt
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint32(src[s-4:]))
		}
		if offset <= 0 || offset > d || length > len(dst)-d {
			return errSnappyCorrupt
		}
		// The copy may overlap what it writes (offset < length): copying
		// from a fixed start doubles the run each time and keeps its
		// period.
		start, end := d-offset, d+length
		for d < end {
			d += copy(dst[d:end], dst[start:d])
		}
	}
	if d != len(dst) {
		return errSnappyCorrupt
	}
	return nil
}
