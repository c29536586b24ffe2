package otlp

import (
	"encoding/binary"
	"unsafe"
)

// The protobuf wire reading of the fast converter. It accepts exactly what
// pdata's generated unmarshalers accept for the fields it knows (the same
// varint, tag and length rules), so that a body it reads is one pdata reads
// the same way; anything else makes the fast path give up.

const (
	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
)

// wireReader walks one message's fields. Its strings alias the body.
type wireReader struct {
	b   []byte
	pos int
	bad bool // a malformed field: the caller gives up
}

func (r *wireReader) more() bool { return !r.bad && r.pos < len(r.b) }

func (r *wireReader) varint() uint64 {
	var num uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 || r.pos >= len(r.b) {
			r.bad = true
			return 0
		}
		c := r.b[r.pos]
		r.pos++
		num |= uint64(c&0x7F) << shift
		if c < 0x80 {
			return num
		}
	}
}

// tag returns the next field's number and wire type, as pdata's
// proto.ConsumeTag reads them.
func (r *wireReader) tag() (int32, int) {
	t := r.varint()
	if r.bad {
		return 0, 0
	}
	n := int32(t >> 3)
	if n <= 0 {
		r.bad = true
		return 0, 0
	}
	return n, int(t & 7)
}

func (r *wireReader) fixed64() uint64 {
	if r.pos+8 > len(r.b) {
		r.bad = true
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b[r.pos:])
	r.pos += 8
	return v
}

func (r *wireReader) bytes() []byte {
	n := r.varint()
	if r.bad {
		return nil
	}
	l := int(n)
	end := r.pos + l
	if l < 0 || end < 0 || end > len(r.b) {
		r.bad = true
		return nil
	}
	b := r.b[r.pos:end]
	r.pos = end
	return b
}

// field reads a field of wire type want, or marks r bad.
func (r *wireReader) check(wt, want int) bool {
	if wt != want {
		r.bad = true
		return false
	}
	return true
}

// alias returns b as a string sharing b's memory.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
