package format

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A frame is a batch of consecutive records in one self-checking blob, the
// unit that the "frames" replication layout stores in one PostgreSQL row. The
// byte layout (all integers big-endian):
//
//	off len field
//	  0   4 magic "EVFR"
//	  4   1 frame version, 1
//	  5   1 codec: 0 none, 1 zstd
//	  6   2 flags, must be 0
//	  8   8 first position (>= 1)
//	 16   4 event count (>= 1)
//	 20   4 body length, uncompressed (<= MaxFrameBody)
//	 24   4 stored body length (bytes after the header)
//	 28   4 CRC-32C of the uncompressed body
//	 32   4 CRC-32C of header bytes 0..31
//	 36   … stored body: the body as is (codec none) or one zstd frame
//
// The uncompressed body is count × (record length uint32, record bytes as
// written by AppendRecord); record i has position first+i.
const (
	FrameVersion    = 1
	FrameHeaderSize = 36

	// MaxFrameBody bounds the uncompressed body. The decoder refuses larger
	// headers before it allocates anything, so a hostile frame costs at most
	// this much memory.
	MaxFrameBody = 256 << 20
)

var frameMagic = [4]byte{'E', 'V', 'F', 'R'}

// Smallest body entry: a 4-byte length and the shortest record (fixed part
// plus one-byte stream and type and two empty counts).
const minFrameEntry = 4 + fixedHeader + 1 + 1 + 1 + 1

// FrameCodec says how a frame body is stored.
type FrameCodec uint8

const (
	FrameCodecNone FrameCodec = 0 // body stored as is
	FrameCodecZstd FrameCodec = 1 // body stored as one zstd frame
)

func (c FrameCodec) String() string {
	switch c {
	case FrameCodecNone:
		return "none"
	case FrameCodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseFrameCodec is the inverse of FrameCodec.String.
func ParseFrameCodec(s string) (FrameCodec, error) {
	switch s {
	case "none":
		return FrameCodecNone, nil
	case "zstd":
		return FrameCodecZstd, nil
	}
	return 0, &InvalidError{Field: "codec", Value: shorten(s), Reason: `must be "none" or "zstd"`}
}

// FrameHeader is the decoded fixed part of a frame.
type FrameHeader struct {
	Codec     FrameCodec
	First     uint64 // position of the first event
	Count     uint32
	BodyLen   uint32 // uncompressed
	StoredLen uint32 // as stored after the header
	BodyCRC   uint32
}

// Last is the position of the last event in the frame.
func (h FrameHeader) Last() uint64 { return h.First + uint64(h.Count) - 1 }

// The zstd encoder and decoder are built once, on first use, and never
// changed afterwards: EncodeAll and DecodeAll are safe for concurrent use and
// keep no state between calls, while building them allocates several
// megabytes of tables. Sharing one read-only pair is therefore both safe and
// much cheaper than a pair per frame, and it keeps the API free of a codec
// handle that every caller would have to thread through.
var zstdCoders = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false), // the frame header carries a CRC-32C of the body
	)
	if err != nil {
		panic("format: zstd encoder: " + err.Error()) // only fails on bad options
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(MaxFrameBody),
		zstd.WithDecodeAllCapLimit(true), // never decode past the header's length
	)
	if err != nil {
		panic("format: zstd decoder: " + err.Error())
	}
	return enc, dec
})

// EncodeFrame appends a frame holding events to dst. The events must have
// consecutive positions starting at events[0].Position >= 1.
func EncodeFrame(dst []byte, events []Event, codec FrameCodec) ([]byte, error) {
	invalid := func(reason string) ([]byte, error) {
		return dst, &InvalidError{Field: "frame", Reason: reason}
	}
	if len(events) == 0 {
		return invalid("no events")
	}
	if uint64(len(events)) > math.MaxUint32 {
		return invalid("too many events")
	}
	if codec != FrameCodecNone && codec != FrameCodecZstd {
		return invalid("unknown codec " + codec.String())
	}
	first := events[0].Position
	if first == 0 || first > math.MaxUint64-uint64(len(events)) {
		return invalid(fmt.Sprintf("first position %d out of range", first))
	}
	for i := range events {
		if events[i].Position != first+uint64(i) {
			return invalid(fmt.Sprintf("positions are not consecutive: %d follows %d", events[i].Position, events[i-1].Position))
		}
	}

	start := len(dst)
	var body []byte
	if codec == FrameCodecNone {
		// Write the body in place after the header: no copy.
		dst = append(dst, make([]byte, FrameHeaderSize)...)
		b, err := appendFrameBody(dst, events)
		if err != nil {
			return dst[:start], err
		}
		dst, body = b, b[start+FrameHeaderSize:]
	} else {
		b, err := appendFrameBody(nil, events)
		if err != nil {
			return dst, err
		}
		body = b
		dst = append(dst, make([]byte, FrameHeaderSize)...)
	}
	if len(body) > MaxFrameBody {
		return invalid(fmt.Sprintf("body of %d bytes exceeds the limit of %d", len(body), MaxFrameBody))
	}
	bodyLen := len(body)
	bodyCRC := crc32.Checksum(body, castagnoli)
	if codec == FrameCodecZstd {
		enc, _ := zstdCoders()
		dst = enc.EncodeAll(body, dst)
	}
	h := dst[start : start+FrameHeaderSize]
	copy(h[0:4], frameMagic[:])
	h[4] = FrameVersion
	h[5] = byte(codec)
	binary.BigEndian.PutUint16(h[6:], 0)
	binary.BigEndian.PutUint64(h[8:], first)
	binary.BigEndian.PutUint32(h[16:], uint32(len(events)))
	binary.BigEndian.PutUint32(h[20:], uint32(bodyLen))
	binary.BigEndian.PutUint32(h[24:], uint32(len(dst)-start-FrameHeaderSize))
	binary.BigEndian.PutUint32(h[28:], bodyCRC)
	binary.BigEndian.PutUint32(h[32:], crc32.Checksum(h[:32], castagnoli))
	return dst, nil
}

func appendFrameBody(dst []byte, events []Event) ([]byte, error) {
	for i := range events {
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		var err error
		if dst, err = AppendRecord(dst, &events[i]); err != nil {
			return dst, fmt.Errorf("event at position %d: %w", events[i].Position, err)
		}
		n := len(dst) - at - 4
		if n > MaxFrameBody {
			return dst, &InvalidError{Field: "frame", Reason: fmt.Sprintf("record at position %d is too large", events[i].Position)}
		}
		binary.BigEndian.PutUint32(dst[at:], uint32(n))
	}
	return dst, nil
}

// frameError reports a bad frame. It unwraps to ErrCorrupt and, when a record
// inside the frame is the cause, to that record's CorruptError too.
type frameError struct {
	first uint64 // 0 when the header could not be trusted
	cause error
}

func (e *frameError) Error() string {
	if e.first == 0 {
		return "corrupt frame: " + e.cause.Error()
	}
	return fmt.Sprintf("corrupt frame at first position %d: %v", e.first, e.cause)
}

func (e *frameError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }

func frameCorrupt(first uint64, format string, args ...any) error {
	return &frameError{first: first, cause: fmt.Errorf(format, args...)}
}

// DecodeFrameHeader checks and decodes the fixed part of a frame without
// touching the body. It verifies the header checksum and the lengths, so a
// header it accepts can size buffers safely.
func DecodeFrameHeader(b []byte) (FrameHeader, error) {
	if len(b) < FrameHeaderSize {
		return FrameHeader{}, frameCorrupt(0, "%d bytes is shorter than a frame header", len(b))
	}
	if [4]byte(b[0:4]) != frameMagic {
		return FrameHeader{}, frameCorrupt(0, "bad magic %q", b[0:4])
	}
	if got, want := crc32.Checksum(b[:32], castagnoli), binary.BigEndian.Uint32(b[32:]); got != want {
		return FrameHeader{}, frameCorrupt(0, "header checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	version, flags := b[4], binary.BigEndian.Uint16(b[6:])
	h := FrameHeader{
		Codec:     FrameCodec(b[5]),
		First:     binary.BigEndian.Uint64(b[8:]),
		Count:     binary.BigEndian.Uint32(b[16:]),
		BodyLen:   binary.BigEndian.Uint32(b[20:]),
		StoredLen: binary.BigEndian.Uint32(b[24:]),
		BodyCRC:   binary.BigEndian.Uint32(b[28:]),
	}
	// From here on the header is what an encoder wrote (or a forgery with a
	// valid checksum): check every field anyway.
	switch {
	case version != FrameVersion:
		return FrameHeader{}, frameCorrupt(h.First, "unknown frame version %d", version)
	case flags != 0:
		return FrameHeader{}, frameCorrupt(h.First, "unknown flags %04x", flags)
	case h.Codec != FrameCodecNone && h.Codec != FrameCodecZstd:
		return FrameHeader{}, frameCorrupt(h.First, "unknown codec %d", uint8(h.Codec))
	case h.First == 0:
		return FrameHeader{}, frameCorrupt(0, "first position is 0")
	case h.Count == 0:
		return FrameHeader{}, frameCorrupt(h.First, "no events")
	case h.First > math.MaxUint64-uint64(h.Count):
		return FrameHeader{}, frameCorrupt(h.First, "last position overflows")
	case h.BodyLen > MaxFrameBody:
		return FrameHeader{}, frameCorrupt(h.First, "body of %d bytes exceeds the limit of %d", h.BodyLen, MaxFrameBody)
	case uint64(h.Count)*minFrameEntry > uint64(h.BodyLen):
		return FrameHeader{}, frameCorrupt(h.First, "%d events cannot fit in a body of %d bytes", h.Count, h.BodyLen)
	case h.Codec == FrameCodecNone && h.StoredLen != h.BodyLen:
		return FrameHeader{}, frameCorrupt(h.First, "stored length %d differs from body length %d without compression", h.StoredLen, h.BodyLen)
	}
	return h, nil
}

// DecodeFrame decodes a whole frame. Any malformed input, including trailing
// bytes, is reported as an error wrapping [ErrCorrupt]; the returned events
// share no memory with b.
func DecodeFrame(b []byte) ([]Event, error) {
	h, err := DecodeFrameHeader(b)
	if err != nil {
		return nil, err
	}
	stored := b[FrameHeaderSize:]
	if uint64(len(stored)) != uint64(h.StoredLen) {
		return nil, frameCorrupt(h.First, "header says %d body bytes, %d present", h.StoredLen, len(stored))
	}
	body := stored
	if h.Codec == FrameCodecZstd {
		// Allocate no more than the header promises, and no more than the
		// stored bytes could possibly expand to (a zstd block of at least 4
		// bytes yields at most 128 KiB), so a lying header costs little.
		size := min(uint64(h.BodyLen), uint64(len(stored))*(128<<10)/4+64)
		_, dec := zstdCoders()
		body, err = dec.DecodeAll(stored, make([]byte, 0, size))
		if err != nil {
			return nil, frameCorrupt(h.First, "zstd: %v", err)
		}
	}
	if uint64(len(body)) != uint64(h.BodyLen) {
		return nil, frameCorrupt(h.First, "body is %d bytes, header says %d", len(body), h.BodyLen)
	}
	if got := crc32.Checksum(body, castagnoli); got != h.BodyCRC {
		return nil, frameCorrupt(h.First, "body checksum mismatch (stored %08x, computed %08x)", h.BodyCRC, got)
	}
	events := make([]Event, 0, h.Count)
	off := 0
	for i := range uint64(h.Count) {
		pos := h.First + i
		if len(body)-off < 4 {
			return nil, frameCorrupt(h.First, "body ends before the record at position %d", pos)
		}
		n := uint64(binary.BigEndian.Uint32(body[off:]))
		off += 4
		if n > uint64(len(body)-off) {
			return nil, frameCorrupt(h.First, "record at position %d overruns the body", pos)
		}
		ev, err := DecodeRecord(pos, body[off:off+int(n)])
		if err != nil {
			return nil, frameCorrupt(h.First, "%w", err)
		}
		off += int(n)
		events = append(events, ev)
	}
	if off != len(body) {
		return nil, frameCorrupt(h.First, "%d trailing body bytes", len(body)-off)
	}
	return events, nil
}
