package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
)

// ErrImport is returned when imported events do not continue the log:
// positions or stream versions that do not follow on, or events that differ
// from those already present.
var ErrImport = errors.New("the imported events do not continue this log")

// ImportedKey is an idempotency key recorded by another copy of the log,
// with the positions its request appended (0, 0 when none).
type ImportedKey struct {
	Key         string
	First, Last uint64
	Retries     int
}

// Import appends events that were recorded elsewhere (an export, a
// replica) exactly as they are: positions, stream versions, ids, times,
// metadata and payload bytes are kept. The first event must be at head+1,
// positions consecutive, and each event at its stream's next version. Keys
// are stored unless already present; their positions must lie in the log.
// Everything is one transaction: all or nothing.
//
// Import runs beside the writer: bbolt orders the two transactions, and
// both take positions and versions from the file, never from memory.
func (s *Store) Import(ctx context.Context, events []format.Event, keys []ImportedKey) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := s.failure(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i := range events {
		ev := &events[i]
		d := format.EventData{Stream: ev.Stream, Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata}
		if err := format.ValidateEventData(&d, math.MaxInt); err != nil {
			return fmt.Errorf("import position %d: %w", ev.Position, err)
		}
		if ev.ID == "" {
			return fmt.Errorf("import position %d: %w", ev.Position, &format.InvalidError{Field: "id", Reason: "must not be empty"})
		}
	}
	var head uint64
	err := s.update(func(tx *bolt.Tx) error {
		log, versions, streams, idem := tx.Bucket(bucketLog), tx.Bucket(bucketVersions), tx.Bucket(bucketStreams), tx.Bucket(bucketIdem)
		log.FillPercent = 1.0
		next := uint64(1)
		if k, _ := log.Cursor().Last(); k != nil {
			next = binary.BigEndian.Uint64(k) + 1
		}
		states := map[string]*streamState{}
		var buf []byte
		for i := range events {
			ev := &events[i]
			if ev.Position != next {
				return fmt.Errorf("%w: event at position %d, the log continues at %d", ErrImport, ev.Position, next)
			}
			st := states[ev.Stream]
			if st == nil {
				st = &streamState{}
				if v := versions.Get([]byte(ev.Stream)); v != nil {
					var err error
					if *st, err = decodeStreamState(v); err != nil {
						return fmt.Errorf("%w: stream %q: %v", ErrCorruptStore, ev.Stream, err)
					}
				}
				states[ev.Stream] = st
			}
			if ev.Version != st.version+1 {
				return fmt.Errorf("%w: position %d is %q version %d, the stream continues at %d", ErrImport, ev.Position, ev.Stream, ev.Version, st.version+1)
			}
			st.version, st.last = ev.Version, ev.Position
			// bbolt keeps keys and values until commit: a fresh buffer each.
			buf = nil
			rec, err := format.AppendRecord(buf, ev)
			if err != nil {
				return fmt.Errorf("import position %d: %w", ev.Position, err)
			}
			if err := log.Put(u64(ev.Position), rec); err != nil {
				return err
			}
			if err := streams.Put(appendStreamKey(nil, ev.Stream, ev.Version), u64(ev.Position)); err != nil {
				return err
			}
			next++
		}
		for stream, st := range states {
			if err := versions.Put([]byte(stream), st.appendTo(nil)); err != nil {
				return err
			}
		}
		head = next - 1
		for _, k := range keys {
			if k.Key == "" || len(k.Key) > MaxKeyBytes || k.Retries < 0 || uint64(k.Retries) > math.MaxUint32 ||
				(k.First == 0) != (k.Last == 0) || k.First > k.Last || k.Last > head {
				return fmt.Errorf("%w: idempotency key %q with positions %d..%d (log ends at %d)", ErrImport, k.Key, k.First, k.Last, head)
			}
			if idem.Get([]byte(k.Key)) != nil {
				continue
			}
			rec := receipt{first: k.First, last: k.Last, retries: uint32(k.Retries)}
			if err := idem.Put([]byte(k.Key), rec.appendTo(nil)); err != nil {
				return err
			}
			if err := putKeyAnchor(tx, k.Key, keyAnchor(rec, head+1)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.raiseHead(head)
	if len(events) > 0 {
		s.broadcast()
	}
	return nil
}

// ExportOptions configure [Store.Export].
type ExportOptions struct {
	From, To    uint64 // positions; From 0 means 1, To 0 means the head when Export starts
	FrameEvents int    // events per frame; default 4096
	// Progress, if set, is called after each frame with events written
	// and the total.
	Progress func(done, total int64)
}

// ExportInfo describes a written export.
type ExportInfo struct {
	From, To uint64 // positions written (To < From when none)
	Frames   int
}

// Export writes positions From..To of the log to w as an export file (see
// format.ExportWriter): zstd frames between a header and a trailer, each
// with checksums. Records are copied as they are, so an import reproduces
// them byte for byte.
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) (ExportInfo, error) {
	from, to := max(opts.From, 1), opts.To
	if to == 0 || to > s.Head() {
		to = s.Head()
	}
	if opts.FrameEvents <= 0 {
		opts.FrameEvents = 4096
	}
	info := ExportInfo{From: from, To: to}
	if to < from {
		info.To = from - 1
	}
	x, err := format.NewExportWriter(w, format.ExportHeader{StoreID: s.id, From: from}, format.FrameCodecZstd)
	if err != nil {
		return info, err
	}
	total := int64(0)
	if to >= from {
		total = int64(to - from + 1)
	}
	var frame []format.Event
	var size int
	flush := func() error {
		if len(frame) == 0 {
			return nil
		}
		if err := x.Write(frame); err != nil {
			return err
		}
		info.Frames++
		if opts.Progress != nil {
			opts.Progress(int64(frame[len(frame)-1].Position-from+1), total)
		}
		frame, size = frame[:0], 0
		return ctx.Err()
	}
	if to >= from {
		for ev, err := range s.ReadAll(from) {
			if err != nil {
				return info, err
			}
			if ev.Position > to {
				break
			}
			frame = append(frame, ev)
			size += len(ev.Data) + 64
			// Frames stay far below the decoder's body limit.
			if len(frame) >= opts.FrameEvents || size >= format.MaxFrameBody/4 {
				if err := flush(); err != nil {
					return info, err
				}
			}
			if ev.Position == to {
				break
			}
		}
	}
	if err := flush(); err != nil {
		return info, err
	}
	return info, x.Close()
}

// ImportInfo describes an import.
type ImportInfo struct {
	From, To uint64 // positions the file holds
	Skipped  uint64 // events already present (a re-run), checked by id
	Imported uint64
}

// ImportExport reads an export file from r and appends its events with
// [Store.Import]. The whole file is read and checked first (every checksum,
// the trailer); a damaged file is refused with the frame's number
// (format.ExportError) and nothing is imported. Events already in the log
// (an interrupted import run again) must be the same events, by id, and are
// skipped. progress, if set, gets events done and the total per frame.
func (s *Store) ImportExport(ctx context.Context, r io.ReadSeeker, progress func(done, total int64)) (ImportInfo, error) {
	var info ImportInfo
	x, err := format.NewExportReader(r)
	if err != nil {
		return info, err
	}
	info.From = x.Header().From
	last := info.From - 1
	for {
		evs, err := x.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, err
		}
		last = evs[len(evs)-1].Position
		if err := ctx.Err(); err != nil {
			return info, err
		}
	}
	info.To = last
	head := s.Head()
	if info.From > head+1 {
		return info, fmt.Errorf("%w: the file starts at position %d, the log ends at %d: import the events between first", ErrImport, info.From, head)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return info, err
	}
	if x, err = format.NewExportReader(r); err != nil {
		return info, err
	}
	total := int64(info.To - info.From + 1)
	for {
		evs, err := x.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, err
		}
		var fresh []format.Event
		for _, ev := range evs {
			if ev.Position > head {
				fresh = append(fresh, ev)
				continue
			}
			have, err := eventAt(s, ev.Position)
			if err != nil {
				return info, err
			}
			if have.ID != ev.ID {
				return info, fmt.Errorf("%w: at position %d the log has event %s, the file %s", ErrImport, ev.Position, have.ID, ev.ID)
			}
			info.Skipped++
		}
		if err := s.Import(ctx, fresh, nil); err != nil {
			return info, err
		}
		info.Imported += uint64(len(fresh))
		head = max(head, evs[len(evs)-1].Position)
		if progress != nil {
			progress(int64(evs[len(evs)-1].Position-info.From+1), total)
		}
	}
	return info, nil
}

// eventAt reads one event by position.
func eventAt(s *Store, pos uint64) (format.Event, error) {
	var ev format.Event
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		ev, err = getEvent(tx.Bucket(bucketLog), pos)
		return err
	})
	return ev, err
}

// raiseHead sets the head to h unless it is already beyond: the writer and
// Import commit in bbolt's order but may publish their heads in the other.
func (s *Store) raiseHead(h uint64) {
	for {
		cur := s.head.Load()
		if h <= cur || s.head.CompareAndSwap(cur, h) {
			return
		}
	}
}
