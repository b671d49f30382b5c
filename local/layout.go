package local

import (
	"bytes"
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

// layoutVersion is bumped on any incompatible change to the buckets. Open
// reads every version from minLayoutVersion on and upgrades the file's
// record of it to layoutVersion, so an older build refuses the file with a
// clear message instead of misreading what this build writes.
//
// Version 2 added the fingerprint to idempotency entries; version 1 entries
// (no fingerprint) stay readable and match any request.
const (
	layoutVersion    = 2
	minLayoutVersion = 1
)

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
// appended (0, 0 when it appended nothing), its retry count and the
// fingerprint of the request (absent in entries written by layout 1).
type receipt struct {
	first, last uint64
	retries     uint32
	fingerprint []byte // nil or FingerprintBytes long
}

// FingerprintBytes is the length of a request fingerprint as stored.
const FingerprintBytes = 16

const receiptBytesV1 = 20

func (r receipt) appendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, r.first)
	dst = binary.BigEndian.AppendUint64(dst, r.last)
	dst = binary.BigEndian.AppendUint32(dst, r.retries)
	return append(dst, r.fingerprint...)
}

func decodeReceipt(b []byte) (receipt, error) {
	if len(b) != receiptBytesV1 && len(b) != receiptBytesV1+FingerprintBytes {
		return receipt{}, fmt.Errorf("idempotency entry is %d bytes, want %d or %d", len(b), receiptBytesV1, receiptBytesV1+FingerprintBytes)
	}
	r := receipt{first: binary.BigEndian.Uint64(b), last: binary.BigEndian.Uint64(b[8:]), retries: binary.BigEndian.Uint32(b[16:])}
	if len(b) > receiptBytesV1 {
		r.fingerprint = bytes.Clone(b[receiptBytesV1:])
	}
	if r.first > r.last || (r.first == 0) != (r.last == 0) {
		return receipt{}, fmt.Errorf("idempotency entry spans positions %d to %d", r.first, r.last)
	}
	return r, nil
}
