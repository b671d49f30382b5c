// Package backoff is the one implementation of exponential backoff with
// jitter and of a context-aware sleep, shared by the executor (retries
// after a version conflict), the replicator (after a transient error) and
// the bench's PostgreSQL baseline.
//
// # Basics
//
// Policy.Wait(n) is the wait before the n-th retry: Min·2^(n-1) capped at
// Max, of which the fraction Jitter is random, so the wait lies in
// [d·(1−Jitter), d], and never below Floor.
//
// # Caveats
//
// A Policy is a value; it keeps no attempt count, so callers that reset on
// success simply start counting again.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes a backoff schedule. The zero Policy waits nothing.
type Policy struct {
	// Min is the first wait's upper bound; each retry doubles it.
	Min time.Duration
	// Max caps the doubling.
	Max time.Duration
	// Jitter is the random fraction of each wait, from 0 (none: waits are
	// exact) to 1 (full jitter: uniform in (0, d]). More jitter spreads out
	// callers that failed together; less makes waits predictable.
	Jitter float64
	// Floor is the least any wait may be, jitter included.
	Floor time.Duration
}

// Wait returns the wait before retry n (n ≥ 1; smaller n counts as 1).
func (p Policy) Wait(n int) time.Duration {
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if j := min(max(p.Jitter, 0), 1); j > 0 && d > 0 {
		d -= time.Duration(float64(d) * j * rand.Float64())
	}
	return max(d, p.Floor)
}

// Sleep waits d or until ctx ends, whichever comes first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
