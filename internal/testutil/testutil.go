// Package testutil holds the helpers that tests in several packages share,
// so each lives in one place: a logger that speaks only under -v, and a
// bounded wait for a condition.
//
// # Caveats
//
// WaitFor's limit is a deadlock guard, not a timing assertion: pick one far
// above what the condition needs on a loaded machine.
package testutil

import (
	"log/slog"
	"os"
	"testing"
	"time"
)

// Logger logs at level to stderr when the tests run with -v, and nowhere
// otherwise, so failures stay readable.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.DiscardHandler)
}

// WaitFor polls cond until it holds, failing the test with "not <what>
// within <limit>" if limit passes first.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
