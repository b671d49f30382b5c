package local

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
)

// MaxProblems bounds the problems one [Report] lists: a badly damaged file
// would otherwise list one per record.
const MaxProblems = 1000

// Problem is one inconsistency found by [Store.Check], with its exact
// location.
type Problem struct {
	// Area is where it was found: "meta", "log", "index", "versions",
	// "idempotency" or "pages" (bbolt's own structure).
	Area     string `json:"area"`
	Position uint64 `json:"position,omitempty"` // the log position concerned, 0 if none
	Stream   string `json:"stream,omitempty"`   // the stream concerned, "" if none
	Version  uint64 `json:"version,omitempty"`  // the stream version concerned, 0 if none
	Key      string `json:"key,omitempty"`      // the idempotency key concerned, "" if none
	Reason   string `json:"reason"`
}

// Location names the problem's place in words: "log position 17",
// `index "acct-1" version 3`, `versions "acct-1"`.
func (p Problem) Location() string {
	var b strings.Builder
	b.WriteString(p.Area)
	if p.Key != "" {
		fmt.Fprintf(&b, " key %q", p.Key)
	}
	if p.Stream != "" {
		fmt.Fprintf(&b, " %q", p.Stream)
	}
	if p.Version != 0 {
		fmt.Fprintf(&b, " version %d", p.Version)
	}
	if p.Position != 0 {
		fmt.Fprintf(&b, " position %d", p.Position)
	}
	return b.String()
}

func (p Problem) String() string { return p.Location() + ": " + p.Reason }

// Report is what [Store.Check] found.
type Report struct {
	Head      uint64    `json:"head"`    // last position in the log
	Events    uint64    `json:"events"`  // records read
	Streams   uint64    `json:"streams"` // streams in the index
	Keys      uint64    `json:"idempotency_keys"`
	Pages     bool      `json:"pages_checked"` // bbolt's page-level check ran (read-only opens only)
	Problems  []Problem `json:"problems"`
	Truncated bool      `json:"truncated,omitempty"` // more than MaxProblems problems; the rest are not listed
}

// OK reports whether nothing is wrong.
func (r Report) OK() bool { return len(r.Problems) == 0 && !r.Truncated }

func (r *Report) add(p Problem) {
	if len(r.Problems) >= MaxProblems {
		r.Truncated = true
		return
	}
	r.Problems = append(r.Problems, p)
}

// Check reads the whole store and reports every inconsistency with its
// location: each record's checksum, positions 1..head without gaps, each
// event's index entry, each stream's versions 1..n without gaps and its
// versions entry, and each idempotency entry and its key-anchors entry. On a store opened with
// Options.ReadOnly it also runs bbolt's page-level check (free and
// reachable pages), which is not safe beside a writer of the same process.
//
// Everything is read in one read transaction, so the report describes one
// moment even while writers go on. Problems in the data go in the report;
// the error is for a check that could not run (ctx ended, store closed).
func (s *Store) Check(ctx context.Context) (Report, error) {
	return s.CheckProgress(ctx, nil)
}

// CheckProgress is [Store.Check] with a progress callback: done and total
// count records and index entries.
func (s *Store) CheckProgress(ctx context.Context, progress func(done, total int64)) (Report, error) {
	var rep Report
	err := s.view(func(tx *bolt.Tx) error {
		c := checker{ctx: ctx, tx: tx, rep: &rep, progress: progress}
		return c.run(s.opts.ReadOnly)
	})
	if errors.Is(err, ErrCorruptStore) {
		// bbolt gave up on a damaged page: that is a finding too.
		rep.add(Problem{Area: "pages", Reason: err.Error()})
		return rep, nil
	}
	return rep, err
}

type checker struct {
	ctx         context.Context
	tx          *bolt.Tx
	rep         *Report
	progress    func(done, total int64)
	done, total int64
	damaged     map[uint64]bool // positions whose record does not decode
}

func (c *checker) tick() error {
	c.done++
	if c.done%4096 != 0 {
		return nil
	}
	if c.progress != nil {
		c.progress(c.done, c.total)
	}
	return c.ctx.Err()
}

func (c *checker) run(pages bool) error {
	c.damaged = make(map[uint64]bool)
	c.meta()
	log, streams, versions, idem := c.tx.Bucket(bucketLog), c.tx.Bucket(bucketStreams), c.tx.Bucket(bucketVersions), c.tx.Bucket(bucketIdem)
	for name, b := range map[string]*bolt.Bucket{"log": log, "index": streams, "versions": versions, "idempotency": idem} {
		if b == nil {
			c.rep.add(Problem{Area: name, Reason: "the bucket is missing"})
		}
	}
	if log == nil || streams == nil || versions == nil || idem == nil {
		return nil
	}
	if k, _ := log.Cursor().Last(); len(k) == 8 {
		c.total = 2 * int64(binary.BigEndian.Uint64(k))
	}
	for _, step := range []func() error{c.log, c.index, c.versions, c.keys} {
		if err := step(); err != nil {
			return err
		}
	}
	if pages {
		c.rep.Pages = true
		for err := range c.tx.Check() {
			c.rep.add(Problem{Area: "pages", Reason: err.Error()})
		}
	}
	if c.progress != nil {
		c.progress(c.total, c.total)
	}
	return c.ctx.Err()
}

func (c *checker) meta() {
	m := c.tx.Bucket(bucketMeta)
	if m == nil {
		c.rep.add(Problem{Area: "meta", Reason: "the bucket is missing"})
		return
	}
	if v := m.Get(metaKeyFormat); len(v) != 4 || binary.BigEndian.Uint32(v) < minLayoutVersion || binary.BigEndian.Uint32(v) > layoutVersion {
		c.rep.add(Problem{Area: "meta", Reason: fmt.Sprintf("layout version %x, want %d to %d", v, minLayoutVersion, layoutVersion)})
	}
	if _, err := uuid.Parse(string(m.Get(metaKeyID))); err != nil {
		c.rep.add(Problem{Area: "meta", Reason: fmt.Sprintf("store id %q is not a UUID", m.Get(metaKeyID))})
	}
	if _, err := time.Parse(time.RFC3339Nano, string(m.Get(metaKeyCreated))); err != nil {
		c.rep.add(Problem{Area: "meta", Reason: fmt.Sprintf("creation time %q: %v", m.Get(metaKeyCreated), err)})
	}
}

// log walks the records in order: keys, gaps, checksums, and each event's
// index entry.
func (c *checker) log() error {
	idx := c.tx.Bucket(bucketStreams)
	var key []byte
	next := uint64(1)
	cur := c.tx.Bucket(bucketLog).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.tick(); err != nil {
			return err
		}
		if len(k) != 8 {
			c.rep.add(Problem{Area: "log", Reason: fmt.Sprintf("key %x is not an 8-byte position", k)})
			continue
		}
		pos := binary.BigEndian.Uint64(k)
		switch {
		case pos == next:
		case pos == next+1:
			c.rep.add(Problem{Area: "log", Position: next, Reason: "missing (a gap in positions)"})
		default:
			c.rep.add(Problem{Area: "log", Position: next, Reason: fmt.Sprintf("positions %d..%d are missing (a gap in positions)", next, pos-1)})
		}
		next = pos + 1
		c.rep.Head = pos
		c.rep.Events++
		ev, err := format.DecodeRecord(pos, v)
		if err != nil {
			c.damaged[pos] = true
			reason := err.Error()
			if ce, ok := errors.AsType[*format.CorruptError](err); ok {
				reason = ce.Reason
			}
			c.rep.add(Problem{Area: "log", Position: pos, Reason: "damaged record: " + reason})
			continue
		}
		key = appendStreamKey(key[:0], ev.Stream, ev.Version)
		switch at := idx.Get(key); {
		case at == nil:
			c.rep.add(Problem{Area: "index", Stream: ev.Stream, Version: ev.Version, Position: pos, Reason: "no index entry for this event"})
		case len(at) != 8:
			c.rep.add(Problem{Area: "index", Stream: ev.Stream, Version: ev.Version, Reason: fmt.Sprintf("entry is %d bytes, want 8", len(at))})
		case binary.BigEndian.Uint64(at) != pos:
			c.rep.add(Problem{Area: "index", Stream: ev.Stream, Version: ev.Version, Reason: fmt.Sprintf("points at position %d, the event is at position %d", binary.BigEndian.Uint64(at), pos)})
		}
	}
	return nil
}

// index walks the per-stream index: versions 1..n without gaps, each entry
// pointing at its event, positions increasing, and the stream's versions
// entry equal to (n, position of n).
func (c *checker) index() error {
	log, versions := c.tx.Bucket(bucketLog), c.tx.Bucket(bucketVersions)
	var (
		stream  []byte
		n, last uint64
		have    bool
	)
	end := func() {
		if !have {
			return
		}
		c.rep.Streams++
		name := string(stream)
		v := versions.Get(stream)
		if v == nil {
			c.rep.add(Problem{Area: "versions", Stream: name, Reason: fmt.Sprintf("missing: the index has versions 1..%d", n)})
			return
		}
		st, err := decodeStreamState(v)
		if err != nil {
			c.rep.add(Problem{Area: "versions", Stream: name, Reason: err.Error()})
			return
		}
		if st.version != n || st.last != last {
			c.rep.add(Problem{Area: "versions", Stream: name, Reason: fmt.Sprintf("says version %d at position %d, the index ends at version %d, position %d", st.version, st.last, n, last)})
		}
	}
	cur := c.tx.Bucket(bucketStreams).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.tick(); err != nil {
			return err
		}
		sep := len(k) - 9
		if sep < 1 || k[sep] != 0 || bytes.IndexByte(k[:sep], 0) >= 0 {
			c.rep.add(Problem{Area: "index", Reason: fmt.Sprintf("key %x is not stream 0x00 version", k)})
			continue
		}
		name, version := k[:sep], binary.BigEndian.Uint64(k[sep+1:])
		if !have || !bytes.Equal(name, stream) {
			end()
			stream, n, last, have = append(stream[:0], name...), 0, 0, true
		}
		s := string(name)
		switch {
		case version == n+1:
		case version == n+2:
			c.rep.add(Problem{Area: "index", Stream: s, Version: n + 1, Reason: "missing (a gap in the stream's versions)"})
		case version > n:
			c.rep.add(Problem{Area: "index", Stream: s, Reason: fmt.Sprintf("versions %d..%d are missing (a gap in the stream's versions)", n+1, version-1)})
		}
		n = version
		if len(v) != 8 {
			c.rep.add(Problem{Area: "index", Stream: s, Version: version, Reason: fmt.Sprintf("entry is %d bytes, want 8", len(v))})
			continue
		}
		pos := binary.BigEndian.Uint64(v)
		if pos <= last {
			c.rep.add(Problem{Area: "index", Stream: s, Version: version, Reason: fmt.Sprintf("position %d is not after the previous version's %d", pos, last)})
		}
		last = pos
		if c.damaged[pos] {
			continue // reported with the record
		}
		rec := log.Get(u64(pos))
		if rec == nil {
			c.rep.add(Problem{Area: "index", Stream: s, Version: version, Reason: fmt.Sprintf("points at position %d, which is not in the log", pos)})
			continue
		}
		ev, err := format.DecodeRecord(pos, rec)
		if err != nil {
			continue // reported by the log walk
		}
		if ev.Stream != s || ev.Version != version {
			c.rep.add(Problem{Area: "index", Stream: s, Version: version, Reason: fmt.Sprintf("points at position %d, which holds %q version %d", pos, ev.Stream, ev.Version)})
		}
	}
	end()
	return nil
}

// versions finds versions entries of streams the index does not have.
func (c *checker) versions() error {
	idx := c.tx.Bucket(bucketStreams).Cursor()
	cur := c.tx.Bucket(bucketVersions).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		prefix := append(append([]byte(nil), k...), 0)
		if ik, _ := idx.Seek(prefix); ik != nil && bytes.HasPrefix(ik, prefix) {
			continue // compared by the index walk
		}
		st, err := decodeStreamState(v)
		if err != nil {
			c.rep.add(Problem{Area: "versions", Stream: string(k), Reason: err.Error()})
			continue
		}
		c.rep.add(Problem{Area: "versions", Stream: string(k), Reason: fmt.Sprintf("says version %d at position %d, the index has no event of the stream", st.version, st.last)})
	}
	return nil
}

// keys checks that every idempotency entry decodes and points inside the
// log.
func (c *checker) keys() error {
	anchors := c.tx.Bucket(bucketKeyAnchors)
	cur := c.tx.Bucket(bucketIdem).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		c.rep.Keys++
		rec, err := decodeReceipt(v)
		if err != nil {
			c.rep.add(Problem{Area: "idempotency", Key: string(k), Reason: err.Error()})
			continue
		}
		if rec.last > c.rep.Head { // decodeReceipt already refused an inverted or half-empty span
			c.rep.add(Problem{Area: "idempotency", Key: string(k), Reason: fmt.Sprintf("positions %d..%d do not lie in the log 1..%d", rec.first, rec.last, c.rep.Head)})
		}
		if anchors != nil && rec.last != 0 && anchors.Get(append(u64(rec.last), k...)) == nil {
			c.rep.add(Problem{Area: "idempotency", Key: string(k), Reason: fmt.Sprintf("not in the key-anchors index at position %d: replication would not ship it", rec.last)})
		}
	}
	return c.anchors()
}

// anchors checks that each key-anchors entry names a stored key.
func (c *checker) anchors() error {
	b := c.tx.Bucket(bucketKeyAnchors)
	if b == nil {
		return nil // a file from before the index, opened read-only
	}
	idem := c.tx.Bucket(bucketIdem)
	cur := b.Cursor()
	for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if len(k) < 9 {
			c.rep.add(Problem{Area: "idempotency", Reason: fmt.Sprintf("key-anchors entry %x is not anchor and key", k)})
			continue
		}
		if idem.Get(k[8:]) == nil {
			c.rep.add(Problem{Area: "idempotency", Key: string(k[8:]), Position: binary.BigEndian.Uint64(k), Reason: "in the key-anchors index but not stored"})
		}
	}
	return nil
}
