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
	// ErrNotStore is returned by [Open] for a file that is not an evstore
	// database (or whose bbolt structure is damaged).
	ErrNotStore = errors.New("not an evstore database")
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

// PathError ties an [Open] failure to the file and carries a hint for the
// operator.
type PathError struct {
	Path string
	Err  error  // one of the sentinels above, or the underlying error
	Hint string // what to do about it
}

func (e *PathError) Error() string {
	msg := fmt.Sprintf("database %s: %v", e.Path, e.Err)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *PathError) Unwrap() error { return e.Err }
