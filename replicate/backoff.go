package replicate

import (
	"context"
	"log/slog"
	"time"

	ibackoff "github.com/evstore/evstore/internal/backoff"
)

// backoff counts the attempts of one outage; each Run owns one.
type backoff struct {
	cfg Backoff
	n   int
}

func newBackoff(cfg Backoff) *backoff { return &backoff{cfg: cfg.withDefaults()} }

// next returns the wait before the next attempt, never below Min.
func (b *backoff) next() time.Duration {
	b.n++
	return ibackoff.Policy{Min: b.cfg.Min, Max: b.cfg.Max, Jitter: max(b.cfg.Jitter, 0), Floor: b.cfg.Min}.Wait(b.n)
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool { return ibackoff.Sleep(ctx, d) == nil }

// errorLog keeps an outage from flooding the log: the first failure is
// logged at once, repeats at most once per interval (with a count of those
// in between), and the end of the outage once.
type errorLog struct {
	what       string // "replication" or "expansion": the work that failed
	log        *slog.Logger
	every      time.Duration
	last       time.Time // when a failure was last logged at Warn; zero when healthy
	since      time.Time // start of the current outage
	suppressed int
}

func (e *errorLog) failed(err error, retryIn time.Duration) {
	now := time.Now()
	if e.since.IsZero() {
		e.since = now
	}
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.suppressed++
		e.log.Debug(e.what+" attempt failed", "err", err, "retry_in", retryIn.Round(time.Millisecond))
		return
	}
	e.log.Warn(e.what+" interrupted, retrying", "err", err, "retry_in", retryIn.Round(time.Millisecond),
		"failing_for", now.Sub(e.since).Round(time.Second), "repeats_not_logged", e.suppressed)
	e.last, e.suppressed = now, 0
}

func (e *errorLog) recovered() {
	if e.since.IsZero() {
		return
	}
	e.log.Info(e.what+" resumed", "after", time.Since(e.since).Round(time.Millisecond))
	e.last, e.since, e.suppressed = time.Time{}, time.Time{}, 0
}
