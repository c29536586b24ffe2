package badger

import (
	"encoding/binary"
)

// Key layout. Every key starts with a one-byte kind; tenant-scoped keys then
// carry the tenant's 4-byte number, so one tenant's data is one contiguous
// key range and no key of one tenant is a prefix of another's.
//
//	'T' tenant-name                              -> tenant number (4 bytes)
//	'S' tenant(4) series(8)                      -> series labels (without _tenant_id)
//	'H' tenant(4) series(8)                      -> head chunk snapshot: encoding(1) chunk bytes
//	'C' tenant(4) series(8) maxt(8) mint(8)      -> sealed chunk: encoding(1) chunk bytes
//
// The encoding byte is encXOR, encPacked, encHistogram or
// encFloatHistogram, or for chunks with start timestamps encXOR2,
// encHistogramST or encFloatHistogramST (see packed.go); one series' chunks
// may be of several.
//
// Integers are big-endian; timestamps have their sign bit flipped so that
// byte order is numeric order. Chunks are keyed by their last timestamp
// first, so a query seeks straight to the first chunk that can overlap it.
const (
	kindTenant byte = 'T'
	kindSeries byte = 'S'
	kindHead   byte = 'H'
	kindChunk  byte = 'C'
)

func sortableTime(t int64) uint64     { return uint64(t) ^ (1 << 63) }
func timeFromSortable(u uint64) int64 { return int64(u ^ (1 << 63)) }

func tenantKey(name string) []byte {
	return append([]byte{kindTenant}, name...)
}

// tenantPrefix is kind + tenant number.
func tenantPrefix(kind byte, tenant uint32) []byte {
	b := make([]byte, 5, 29)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:], tenant)
	return b
}

// seriesKey is kind + tenant + series; used for 'S' and 'H' keys and as the
// prefix of a series' 'C' keys.
func seriesKey(kind byte, tenant uint32, id uint64) []byte {
	b := tenantPrefix(kind, tenant)
	return binary.BigEndian.AppendUint64(b, id)
}

func chunkKey(tenant uint32, id uint64, mint, maxt int64) []byte {
	b := seriesKey(kindChunk, tenant, id)
	b = binary.BigEndian.AppendUint64(b, sortableTime(maxt))
	return binary.BigEndian.AppendUint64(b, sortableTime(mint))
}

// parseChunkKey returns the time range of a 'C' key.
func parseChunkKey(k []byte) (id uint64, mint, maxt int64, ok bool) {
	if len(k) != 29 || k[0] != kindChunk {
		return 0, 0, 0, false
	}
	id = binary.BigEndian.Uint64(k[5:13])
	maxt = timeFromSortable(binary.BigEndian.Uint64(k[13:21]))
	mint = timeFromSortable(binary.BigEndian.Uint64(k[21:29]))
	return id, mint, maxt, true
}

// parseSeriesKey returns the tenant and series of an 'S' or 'H' key.
func parseSeriesKey(k []byte) (tenant uint32, id uint64, ok bool) {
	if len(k) != 13 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:5]), binary.BigEndian.Uint64(k[5:13]), true
}
