package local

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Bucket names. The layout is documented byte by byte in docs/format.md.
var (
	bucketLog      = []byte("log")      // position(8, BE) -> record
	bucketVersions = []byte("versions") // stream -> version(8, BE) last-position(8, BE)
	bucketStreams  = []byte("streams")  // stream 0x00 version(8, BE) -> position(8, BE)
	bucketMeta     = []byte("meta")     // see metaKey*
	bucketIdem     = []byte("idempotency")
)

var (
	metaKeyFormat  = []byte("format")   // uint32 BE layout version
	metaKeyID      = []byte("store-id") // UUID text
	metaKeyCreated = []byte("created")  // RFC 3339 UTC
)

// layoutVersion is bumped on any incompatible change to the buckets.
const layoutVersion = 1

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// streamKey is stream 0x00 version. Stream ids contain no control
// characters, so the separator keeps one stream's keys contiguous and apart
// from any stream that extends its name ("a" vs "ab").
func appendStreamKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

// streamState is a versions-bucket value.
type streamState struct {
	version uint64
	last    uint64 // position of the stream's last event
}

func decodeStreamState(b []byte) (streamState, error) {
	if len(b) != 16 {
		return streamState{}, errors.New("versions entry is not 16 bytes")
	}
	return streamState{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}, nil
}

func (st streamState) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, st.version)
	return binary.BigEndian.AppendUint64(dst, st.last)
}

// receipt is an idempotency-bucket value: the positions a keyed request
// appended (0, 0 when it appended nothing) and its retry count.
type receipt struct {
	first, last uint64
	retries     uint32
}

func (r receipt) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.first)
	dst = binary.BigEndian.AppendUint64(dst, r.last)
	return binary.BigEndian.AppendUint32(dst, r.retries)
}

func decodeReceipt(b []byte) (receipt, error) {
	if len(b) != 20 {
		return receipt{}, fmt.Errorf("idempotency entry is %d bytes, want 20", len(b))
	}
	return receipt{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint32(b[16:])}, nil
}
