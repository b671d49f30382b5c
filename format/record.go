package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"github.com/google/uuid"
)

// RecordVersion is the version byte written into every record. A decoder
// refuses versions it does not know rather than guessing.
const RecordVersion = 1

// Fixed part of a record: crc(4) version(1) stream-version(8) time(8) id(16).
const (
	offCRC      = 0
	offVersion  = 4
	offStreamV  = 5
	offTime     = 13
	offID       = 21
	fixedHeader = 37
)

// castagnoli is computed once; crc32.MakeTable caches it internally, but a
// package-level table keeps the hot path free of the lookup.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt reports bytes that are not a valid record or frame.
var ErrCorrupt = errors.New("corrupt data")

// CorruptError tells where corruption was found. It unwraps to [ErrCorrupt].
type CorruptError struct {
	Position uint64 // global position of the record, 0 if unknown
	Reason   string
}

func (e *CorruptError) Error() string {
	if e.Position == 0 {
		return "corrupt record: " + e.Reason
	}
	return fmt.Sprintf("corrupt record at position %d: %s", e.Position, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// AppendRecord appends the record encoding of ev to dst and returns the
// extended slice. ev.ID must be a UUID in text form (or empty, stored as the
// nil UUID); ev.Position is not encoded. Names longer than [MaxNameBytes] are
// a programming error: callers validate with [ValidateEventData] first.
func AppendRecord(dst []byte, ev *Event) ([]byte, error) {
	if len(ev.Stream) == 0 || len(ev.Stream) > MaxNameBytes || len(ev.Type) == 0 || len(ev.Type) > MaxNameBytes {
		return dst, &InvalidError{Field: "record", Reason: "stream and type must be 1 to 255 bytes"}
	}
	var id uuid.UUID
	if ev.ID != "" {
		var err error
		if id, err = uuid.Parse(ev.ID); err != nil {
			return dst, &InvalidError{Field: "id", Value: ev.ID, Reason: "is not a UUID"}
		}
	}
	start := len(dst)
	dst = slices.Grow(dst, fixedHeader+2+len(ev.Stream)+len(ev.Type)+2*binary.MaxVarintLen64+len(ev.Data)+metadataSize(ev.Metadata))
	dst = append(dst, 0, 0, 0, 0, RecordVersion)
	dst = binary.BigEndian.AppendUint64(dst, ev.Version)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ev.Time.UnixNano()))
	dst = append(dst, id[:]...)
	dst = append(dst, byte(len(ev.Stream)))
	dst = append(dst, ev.Stream...)
	dst = append(dst, byte(len(ev.Type)))
	dst = append(dst, ev.Type...)
	dst = binary.AppendUvarint(dst, uint64(len(ev.Metadata)))
	if len(ev.Metadata) > 0 {
		keys := make([]string, 0, len(ev.Metadata))
		for k := range ev.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := ev.Metadata[k]
			dst = binary.AppendUvarint(dst, uint64(len(k)))
			dst = append(dst, k...)
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(ev.Data)))
	dst = append(dst, ev.Data...)
	rec := dst[start:]
	binary.BigEndian.PutUint32(rec[offCRC:], crc32.Checksum(rec[offVersion:], castagnoli))
	return dst, nil
}

func metadataSize(md map[string]string) int {
	n := 0
	for k, v := range md {
		n += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	return n
}

// DecodeRecord decodes the record stored at position pos. The returned Event
// shares no memory with b, so b may be reused (bbolt pages are only valid
// inside their transaction).
func DecodeRecord(pos uint64, b []byte) (Event, error) {
	bad := func(reason string) (Event, error) {
		return Event{}, &CorruptError{Position: pos, Reason: reason}
	}
	if len(b) < fixedHeader+3 {
		return bad(fmt.Sprintf("%d bytes is shorter than any record", len(b)))
	}
	if got, want := crc32.Checksum(b[offVersion:], castagnoli), binary.BigEndian.Uint32(b[offCRC:]); got != want {
		return bad(fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got))
	}
	if b[offVersion] != RecordVersion {
		return bad(fmt.Sprintf("unknown record version %d", b[offVersion]))
	}
	// The checksum passed, so the bytes are what an encoder wrote; the bounds
	// checks below still guard against a buggy encoder or a forged checksum.
	ev := Event{
		Position: pos,
		Version:  binary.BigEndian.Uint64(b[offStreamV:]),
		Time:     time.Unix(0, int64(binary.BigEndian.Uint64(b[offTime:]))).UTC(),
	}
	var id uuid.UUID
	copy(id[:], b[offID:offID+16])
	ev.ID = id.String()

	r := reader{b: b, off: fixedHeader}
	stream, ok := r.short()
	if !ok || len(stream) == 0 {
		return bad("stream id truncated or empty")
	}
	typ, ok := r.short()
	if !ok || len(typ) == 0 {
		return bad("type truncated or empty")
	}
	ev.Stream, ev.Type = string(stream), string(typ)
	n, ok := r.uvarint()
	if !ok || n > uint64(len(b)) {
		return bad("metadata count truncated or too large")
	}
	if n > 0 {
		ev.Metadata = make(map[string]string, n)
		var prev []byte
		for i := range n {
			k, ok1 := r.long()
			v, ok2 := r.long()
			if !ok1 || !ok2 {
				return bad("metadata truncated")
			}
			// The encoder writes keys sorted and unique; anything else was
			// not written by it.
			if i > 0 && bytes.Compare(prev, k) >= 0 {
				return bad("metadata keys out of order or repeated")
			}
			prev = k
			ev.Metadata[string(k)] = string(v)
		}
	}
	data, ok := r.long()
	if !ok {
		return bad("payload truncated")
	}
	if r.off != len(b) {
		return bad(fmt.Sprintf("%d trailing bytes", len(b)-r.off))
	}
	if len(data) > 0 {
		ev.Data = append([]byte(nil), data...)
	}
	return ev, nil
}

// reader walks a byte slice; each method reports false instead of panicking
// when the input ends early.
type reader struct {
	b   []byte
	off int
}

func (r *reader) short() ([]byte, bool) {
	if r.off >= len(r.b) {
		return nil, false
	}
	n := int(r.b[r.off])
	r.off++
	return r.take(uint64(n))
}

func (r *reader) long() ([]byte, bool) {
	n, ok := r.uvarint()
	if !ok {
		return nil, false
	}
	return r.take(n)
}

func (r *reader) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(r.b[r.off:])
	// Only the shortest form is accepted, so each event has one encoding.
	var tmp [binary.MaxVarintLen64]byte
	if n <= 0 || binary.PutUvarint(tmp[:], v) != n {
		return 0, false
	}
	r.off += n
	return v, true
}

func (r *reader) take(n uint64) ([]byte, bool) {
	if n > uint64(len(r.b)-r.off) {
		return nil, false
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, true
}
