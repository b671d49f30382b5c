package local

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict is returned when an [Expect] does not hold at commit.
	ErrConflict = errors.New("version conflict")
	// ErrLocked is returned by [Open] when another process holds the file.
	ErrLocked = errors.New("database is in use by another process")
	// ErrClosed is returned by operations on a closed [Store].
	ErrClosed = errors.New("store is closed")
	// ErrWriteFailed is returned by every write after a commit failed (an
	// fsync error, a full disk): the file's state is then unknown to this
	// process, so it stops writing until the store is reopened.
	ErrWriteFailed = errors.New("a commit failed; the store refuses writes until it is reopened")
	// ErrNotStore is returned by [Open] for a file that is not an evstore
	// database (or whose bbolt structure is damaged).
	ErrNotStore = errors.New("not an evstore database")
	// ErrKeyReused is returned when an idempotency key comes back with a
	// request other than the one it was first committed with.
	ErrKeyReused = errors.New("idempotency key already used by a different request")
	// ErrNewerLayout is returned by [Open] for a database written by a newer
	// evstore, in a layout this build cannot read.
	ErrNewerLayout = errors.New("the database was written by a newer version of evstore")
	// ErrCorruptStore is returned when the store's own structures (not a
	// single record) are damaged.
	ErrCorruptStore = errors.New("store structure is corrupt")
	// ErrReadOnly is returned by writes to a store opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store is open read-only")
	// ErrStoreID is returned by [Open] when Options.StoreID names another
	// store than the file holds.
	ErrStoreID = errors.New("the file belongs to another store id")
)

// ConflictError says which stream failed its expectation. It unwraps to
// [ErrConflict].
type ConflictError struct {
	Stream   string
	Expected uint64 // the version the caller expected (0: must not exist)
	Actual   uint64 // the version found at commit
}

func (e *ConflictError) Error() string {
	if e.Expected == 0 {
		return fmt.Sprintf("stream %q: expected it not to exist, found version %d", e.Stream, e.Actual)
	}
	return fmt.Sprintf("stream %q: expected version %d, found %d", e.Stream, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// CommitError is the failure of a group commit. It unwraps to
// [ErrWriteFailed] and to the cause. Whether the commit reached the disk is
// unknown until the store is reopened: bbolt may fail on the last fsync,
// after the commit's pages were written.
type CommitError struct{ Err error }

func (e *CommitError) Error() string {
	return fmt.Sprintf("commit failed: %v: whether it reached the disk is known only after reopening; the store refuses writes until it is reopened (check the disk: space, errors in the system log)", e.Err)
}

// Unwrap makes errors.Is hold for ErrWriteFailed and for the cause.
func (e *CommitError) Unwrap() []error { return []error{ErrWriteFailed, e.Err} }

// RefusedError is the answer to every write after a commit failed: it was
// not attempted, so nothing of it was written. It unwraps to
// [ErrWriteFailed] and to the [CommitError] that stopped the store.
type RefusedError struct{ Commit *CommitError }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("write refused, nothing was written: an earlier commit failed (%v)", e.Commit.Err)
}

// Unwrap makes errors.Is hold for ErrWriteFailed and the failed commit's cause.
func (e *RefusedError) Unwrap() error { return e.Commit }

// OpenError ties an [Open] failure to the file and carries a hint for the
// operator.
type OpenError struct {
	Path string
	Err  error  // one of the sentinels above, or the underlying error
	Hint string // what to do about it
}

func (e *OpenError) Error() string {
	msg := fmt.Sprintf("database %s: %v", e.Path, e.Err)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *OpenError) Unwrap() error { return e.Err }

// KeyReusedError names the idempotency key. It unwraps to [ErrKeyReused].
type KeyReusedError struct{ Key string }

func (e *KeyReusedError) Error() string {
	return fmt.Sprintf("key %q: %v; nothing was written: give each distinct request its own key", e.Key, ErrKeyReused)
}

// Unwrap makes errors.Is(err, ErrKeyReused) hold.
func (e *KeyReusedError) Unwrap() error { return ErrKeyReused }

// DependencyError rejects a request built on a queued request
// ([Request.After]) that was not committed. It unwraps to [ErrConflict]:
// the state it was decided on never came to be.
type DependencyError struct{}

func (e *DependencyError) Error() string {
	return "a queued request this one was built on was not committed: " + ErrConflict.Error()
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *DependencyError) Unwrap() error { return ErrConflict }
