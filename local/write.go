package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"

	"github.com/evstore/evstore/format"
	"github.com/google/uuid"
)

// Expect requires a stream to be exactly at Version when the append
// commits; Version 0 means the stream must not exist.
type Expect struct {
	Stream  string
	Version uint64
}

// MaxKeyBytes is the longest idempotency key.
const MaxKeyBytes = 1024

// Request is one atomic write: all its events or none.
type Request struct {
	Events []format.EventData
	// Expect is checked for every stream named, whether or not Events
	// writes to it: a command that only read a stream still depends on it.
	Expect []Expect
	// Key, if set, makes the request idempotent: if a request with the
	// same key was committed before, nothing is written and its receipt is
	// returned with Duplicate set. The key is stored in the same
	// transaction as the events.
	Key string
	// Retries is stored with Key so a duplicate reports the first
	// execution's retry count.
	Retries int
	// After lists queued requests this one was built on (a command that
	// folded their events before they were durable). If any of them was
	// not committed with its own events (rejected, cancelled, or a
	// duplicate of an earlier key), this request is rejected with a
	// DependencyError, which matches ErrConflict. They must have been
	// queued before this one (Enqueue returned).
	After []*Pending
	// Fingerprint identifies what the request does (any bytes; a hash of
	// them is stored with Key). A later request with the same Key and
	// another Fingerprint fails with ErrKeyReused and writes nothing; one
	// without a Fingerprint, or a key stored without one, matches any.
	Fingerprint []byte
}

// fingerprintOf is the stored form of a request fingerprint: nil for none.
func fingerprintOf(b []byte) []byte {
	if b == nil {
		return nil
	}
	sum := sha256.Sum256(b)
	return sum[:FingerprintBytes]
}

// checkFingerprint refuses a request whose key was stored for another one.
func checkFingerprint(key string, stored, req []byte) error {
	if stored == nil || req == nil || bytes.Equal(stored, req) {
		return nil
	}
	return &KeyReusedError{Key: key}
}

// Receipt describes a committed request.
type Receipt struct {
	Events    []format.Event // what was appended, in position order
	Duplicate bool           // Key was already committed; Events are the first request's
	Retries   int            // as stored with Key
}

// Last is the position of the last appended event, 0 if none.
func (r Receipt) Last() uint64 {
	if len(r.Events) == 0 {
		return 0
	}
	return r.Events[len(r.Events)-1].Position
}

// clone returns a copy of r that shares no memory a caller could change.
func (r Receipt) clone() Receipt {
	r.Events = slices.Clone(r.Events)
	for i := range r.Events {
		r.Events[i].Data = bytes.Clone(r.Events[i].Data)
		r.Events[i].Metadata = maps.Clone(r.Events[i].Metadata)
	}
	return r
}

// Append writes events atomically across all their streams after checking
// every expect. It returns the position of the last event written. An empty
// event list is a no-op.
func (s *Store) Append(ctx context.Context, events []format.EventData, expect ...Expect) (last uint64, err error) {
	r, err := s.Write(ctx, Request{Events: events, Expect: expect})
	return r.Last(), err
}

// Write commits req through the group-commit writer and waits until it is
// durable (or, with Options.NoSync, committed).
//
// A context cancelled before the writer picks the request up means nothing
// is written. Once picked up, the commit goes ahead and Write waits for it
// (a few milliseconds at most) so the answer is never ambiguous.
func (s *Store) Write(ctx context.Context, req Request) (Receipt, error) {
	p, err := s.Enqueue(ctx, req)
	if err != nil {
		return Receipt{}, err
	}
	return p.Wait()
}

// Pending is a request queued for the writer by [Store.Enqueue].
type Pending struct{ r *request }

// Done is closed once the request is answered.
func (p *Pending) Done() <-chan struct{} { return p.r.done }

// Wait waits for the answer: what [Store.Write] returns. The Receipt's
// events must not be modified; it is the same for every call.
func (p *Pending) Wait() (Receipt, error) {
	<-p.r.done
	return p.r.receipt, p.r.err
}

// IDs are the ids the request's events get, in order.
func (p *Pending) IDs() []string { return p.r.ids }

// Enqueue queues req for the writer and returns without waiting for the
// commit. Requests are committed (or rejected) in the order their Enqueue
// calls returned, which lets a caller that orders its own requests build
// one on another ([Request.After]). A nil request with nothing to do comes
// back already answered.
func (s *Store) Enqueue(ctx context.Context, req Request) (*Pending, error) {
	if err := s.validate(&req); err != nil {
		return nil, err
	}
	if len(req.Events) == 0 && req.Key == "" {
		r := &request{done: make(chan struct{}), applied: true}
		close(r.done)
		return &Pending{r}, nil
	}
	if s.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{ctx: ctx, req: req, fp: fingerprintOf(req.Fingerprint), done: make(chan struct{})}
	// Ids are made and formatted here, not by the writer: the writer is one
	// goroutine that every request waits on, the callers are many.
	r.ids = make([]string, len(req.Events))
	for i := range r.ids {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("make event id: %w", err)
		}
		r.ids[i] = id.String()
	}
	if err := s.submit(ctx, r); err != nil {
		return nil, err
	}
	return &Pending{r}, nil
}

// submit hands r to the writer, unless the store has stopped writing or
// is closed. A ctx that ends while the queue is full means nothing was
// written.
func (s *Store) submit(ctx context.Context, r *request) error {
	if err := s.failure(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) validate(req *Request) error {
	for i := range req.Events {
		if err := format.ValidateEventData(&req.Events[i], s.opts.MaxEventBytes); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	seen := make(map[string]uint64, len(req.Expect))
	for _, e := range req.Expect {
		if err := format.ValidateStream(e.Stream); err != nil {
			return fmt.Errorf("expect: %w", err)
		}
		if v, dup := seen[e.Stream]; dup && v != e.Version {
			return &format.InvalidError{Field: "expect", Value: e.Stream, Reason: fmt.Sprintf("expected at two versions, %d and %d", v, e.Version)}
		}
		seen[e.Stream] = e.Version
	}
	if len(req.Key) > MaxKeyBytes {
		return &format.InvalidError{Field: "idempotency key", Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(req.Key), MaxKeyBytes)}
	}
	if req.Retries < 0 {
		return &format.InvalidError{Field: "retries", Reason: "must not be negative"}
	}
	return nil
}
