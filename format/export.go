package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/google/uuid"
)

// An export file is a log (or a range of it) as a header, a sequence of
// frames (see [EncodeFrame], zstd by default) and a trailer, each with its
// own checksum (all integers big-endian):
//
//	header, 36 bytes:  magic "EVEX", version 1, 3 zero bytes, store id (16
//	                   bytes), first position (8), CRC-32C of bytes 0..31
//	frames:            consecutive positions from the first position on,
//	                   each followed by a CRC-32C of the frame's bytes as
//	                   stored (4), so that no byte escapes a checksum: the
//	                   frame's own covers its header and its uncompressed
//	                   body, and zstd ignores some bits of its input
//	trailer, 32 bytes: magic "EVEN", frame count (8), event count (8), last
//	                   position (8, first-1 when empty), CRC-32C of 0..27
//
// The trailer makes a truncated file detectable; nothing may follow it.
const (
	ExportVersion     = 1
	ExportHeaderSize  = 36
	ExportTrailerSize = 32
)

var (
	exportMagic  = [4]byte{'E', 'V', 'E', 'X'}
	trailerMagic = [4]byte{'E', 'V', 'E', 'N'}
)

// ExportHeader is the decoded header of an export file.
type ExportHeader struct {
	StoreID string // the exported store's id (UUID text)
	From    uint64 // position of the first event (>= 1)
}

// ExportError locates a problem in an export file. It unwraps to
// [ErrCorrupt] (and to the frame's own error when there is one).
type ExportError struct {
	Frame  int    // 1-based frame number; 0 for the header, -1 for the trailer
	First  uint64 // first position the frame should hold, 0 if unknown
	Reason string
	Err    error // the underlying frame error, if any
}

func (e *ExportError) Error() string {
	var where string
	switch e.Frame {
	case 0:
		where = "header"
	case -1:
		where = "trailer"
	default:
		where = fmt.Sprintf("frame %d", e.Frame)
		if e.First != 0 {
			where += fmt.Sprintf(" (from position %d)", e.First)
		}
	}
	return fmt.Sprintf("export file %s: %s", where, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) hold.
func (e *ExportError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrCorrupt, e.Err}
	}
	return []error{ErrCorrupt}
}

// ExportWriter writes an export file.
type ExportWriter struct {
	w              io.Writer
	codec          FrameCodec
	next           uint64
	frames, events uint64
	buf            []byte
	closed         bool
}

// NewExportWriter writes the header to w and returns a writer for frames.
func NewExportWriter(w io.Writer, h ExportHeader, codec FrameCodec) (*ExportWriter, error) {
	id, err := uuid.Parse(h.StoreID)
	if err != nil {
		return nil, &InvalidError{Field: "store id", Value: shorten(h.StoreID), Reason: "is not a UUID"}
	}
	if h.From == 0 {
		return nil, &InvalidError{Field: "first position", Reason: "must be at least 1"}
	}
	b := make([]byte, 0, ExportHeaderSize)
	b = append(b, exportMagic[:]...)
	b = append(b, ExportVersion, 0, 0, 0)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, h.From)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return &ExportWriter{w: w, codec: codec, next: h.From}, nil
}

// Write writes events, which must continue the positions written so far,
// as one frame.
func (x *ExportWriter) Write(events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if events[0].Position != x.next {
		return &InvalidError{Field: "export", Reason: fmt.Sprintf("events start at position %d, the file is at %d", events[0].Position, x.next)}
	}
	var err error
	if x.buf, err = EncodeFrame(x.buf[:0], events, x.codec); err != nil {
		return err
	}
	x.buf = binary.BigEndian.AppendUint32(x.buf, crc32.Checksum(x.buf, castagnoli))
	if _, err := x.w.Write(x.buf); err != nil {
		return err
	}
	x.frames++
	x.events += uint64(len(events))
	x.next += uint64(len(events))
	return nil
}

// Close writes the trailer. It does not close the underlying writer.
func (x *ExportWriter) Close() error {
	if x.closed {
		return nil
	}
	x.closed = true
	b := make([]byte, 0, ExportTrailerSize)
	b = append(b, trailerMagic[:]...)
	b = binary.BigEndian.AppendUint64(b, x.frames)
	b = binary.BigEndian.AppendUint64(b, x.events)
	b = binary.BigEndian.AppendUint64(b, x.next-1)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	_, err := x.w.Write(b)
	return err
}

// ExportReader reads an export file written by [ExportWriter], checking
// every checksum, the positions' continuity and the trailer.
type ExportReader struct {
	r      io.Reader
	h      ExportHeader
	next   uint64
	frame  int
	events uint64
	done   bool
	buf    []byte
}

// NewExportReader reads and checks the header.
func NewExportReader(r io.Reader) (*ExportReader, error) {
	var b [ExportHeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, &ExportError{Reason: fmt.Sprintf("cannot read the %d-byte header: %v", ExportHeaderSize, err)}
	}
	if [4]byte(b[:4]) != exportMagic {
		return nil, &ExportError{Reason: fmt.Sprintf("bad magic %q: not an evstore export file", b[:4])}
	}
	if got, want := crc32.Checksum(b[:32], castagnoli), binary.BigEndian.Uint32(b[32:]); got != want {
		return nil, &ExportError{Reason: fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got)}
	}
	if b[4] != ExportVersion || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return nil, &ExportError{Reason: fmt.Sprintf("unknown version %d", b[4])}
	}
	from := binary.BigEndian.Uint64(b[24:])
	if from == 0 {
		return nil, &ExportError{Reason: "first position is 0"}
	}
	id := uuid.UUID(b[8:24])
	return &ExportReader{r: r, h: ExportHeader{StoreID: id.String(), From: from}, next: from}, nil
}

// Header is the file's header.
func (x *ExportReader) Header() ExportHeader { return x.h }

// Frames is how many frames were read so far.
func (x *ExportReader) Frames() int { return x.frame }

// Next returns the events of the next frame, or io.EOF after a valid
// trailer that nothing follows. Any damage is an [*ExportError] naming the
// frame.
func (x *ExportReader) Next() ([]Event, error) {
	if x.done {
		return nil, io.EOF
	}
	n := x.frame + 1
	bad := func(reason string, err error) error {
		return &ExportError{Frame: n, First: x.next, Reason: reason, Err: err}
	}
	var magic [4]byte
	if _, err := io.ReadFull(x.r, magic[:]); err != nil {
		return nil, bad("the file ends before its trailer (truncated?)", nil)
	}
	if magic == trailerMagic {
		return nil, x.trailer()
	}
	if magic != frameMagic {
		return nil, bad(fmt.Sprintf("bad magic %q", magic[:]), nil)
	}
	x.buf = append(x.buf[:0], magic[:]...)
	x.buf = append(x.buf, make([]byte, FrameHeaderSize-4)...)
	if _, err := io.ReadFull(x.r, x.buf[4:]); err != nil {
		return nil, bad("the file ends inside a frame header (truncated?)", nil)
	}
	h, err := DecodeFrameHeader(x.buf)
	if err != nil {
		return nil, bad(err.Error(), err)
	}
	if h.StoredLen > MaxFrameBody {
		return nil, bad(fmt.Sprintf("stored body of %d bytes exceeds the limit of %d", h.StoredLen, MaxFrameBody), nil)
	}
	if h.First != x.next {
		return nil, bad(fmt.Sprintf("starts at position %d, expected %d", h.First, x.next), nil)
	}
	// Read the body in steps, so a lying length costs no more memory than
	// the bytes actually present.
	var body bytes.Buffer
	if m, err := io.CopyN(&body, x.r, int64(h.StoredLen)+4); err != nil {
		return nil, bad(fmt.Sprintf("the file ends inside the frame (%d of %d bytes)", m, int64(h.StoredLen)+4), nil)
	}
	x.buf = append(x.buf, body.Bytes()...)
	stored := x.buf[:len(x.buf)-4]
	if got, want := crc32.Checksum(stored, castagnoli), binary.BigEndian.Uint32(x.buf[len(stored):]); got != want {
		return nil, bad(fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got), nil)
	}
	evs, err := DecodeFrame(stored)
	if err != nil {
		return nil, bad(err.Error(), err)
	}
	x.frame = n
	x.next += uint64(len(evs))
	x.events += uint64(len(evs))
	return evs, nil
}

func (x *ExportReader) trailer() error {
	bad := func(reason string) error { return &ExportError{Frame: -1, Reason: reason} }
	b := make([]byte, ExportTrailerSize)
	copy(b, trailerMagic[:])
	if _, err := io.ReadFull(x.r, b[4:]); err != nil {
		return bad("truncated")
	}
	if got, want := crc32.Checksum(b[:28], castagnoli), binary.BigEndian.Uint32(b[28:]); got != want {
		return bad(fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got))
	}
	frames, events, last := binary.BigEndian.Uint64(b[4:]), binary.BigEndian.Uint64(b[12:]), binary.BigEndian.Uint64(b[20:])
	if frames != uint64(x.frame) || events != x.events || last != x.next-1 {
		return bad(fmt.Sprintf("says %d frames, %d events through position %d; the file has %d, %d through %d", frames, events, last, x.frame, x.events, x.next-1))
	}
	var extra [1]byte
	if n, _ := x.r.Read(extra[:]); n > 0 {
		return bad("bytes follow the trailer")
	}
	x.done = true
	return io.EOF
}
