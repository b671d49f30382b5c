package projection

import (
	"errors"
	"fmt"
)

var (
	// ErrApply is what a projection's Apply (or a Handler's HandleBatch)
	// failing unwraps to; the projection stops, the store goes on.
	ErrApply = errors.New("projection failed to apply an event")
	// ErrRunTwice means a projection's checkpoint moved under its runner:
	// another runner (or a Drop) touched it.
	ErrRunTwice = errors.New("projection's checkpoint moved under its runner")
	// ErrNotFound is returned by Status for a projection that never ran.
	ErrNotFound = errors.New("no such projection")
)

// ApplyError says which event stopped a projection. It unwraps to
// [ErrApply] and to the projection's own error.
type ApplyError struct {
	Projection string
	Position   uint64 // the event that failed; everything before it is applied
	Stream     string
	Type       string
	Err        error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("projection %q stopped at position %d (%s %s): %v; events before it are applied: fix the cause and run it again, or rebuild it",
		e.Projection, e.Position, e.Stream, e.Type, e.Err)
}

// Unwrap makes errors.Is hold for ErrApply and for the cause.
func (e *ApplyError) Unwrap() []error { return []error{ErrApply, e.Err} }

// RunTwiceError reports a checkpoint that moved under a runner. It unwraps
// to [ErrRunTwice].
type RunTwiceError struct {
	Projection      string
	Expected, Found uint64
}

func (e *RunTwiceError) Error() string {
	return fmt.Sprintf("projection %q: checkpoint is %d, this runner left it at %d: run each projection once per store, and stop it before dropping it",
		e.Projection, e.Found, e.Expected)
}

// Unwrap makes errors.Is(err, ErrRunTwice) hold.
func (e *RunTwiceError) Unwrap() error { return ErrRunTwice }
