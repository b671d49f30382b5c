package replicate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/evstore/evstore/format"
)

// Sentinel errors. Each is permanent: Run returns it at once instead of
// retrying, because waiting cannot fix it. Match them with errors.Is; the
// error itself is an [*Error] with the details and a hint for the operator.
var (
	// ErrStoreMismatch: the source name is owned by another store id. The
	// usual cause is a wiped or replaced device whose new log restarted at
	// position 1 under the same host name.
	ErrStoreMismatch = errors.New("store id mismatch")
	// ErrAhead: PostgreSQL holds more events for this source than the local
	// log, e.g. the log was restored from an older backup.
	ErrAhead = errors.New("PostgreSQL is ahead of the local log")
	// ErrDiverged: the last event PostgreSQL has for this source is not the
	// local event at that position.
	ErrDiverged = errors.New("PostgreSQL and the local log have diverged")
	// ErrConcurrent: another replicator is running for the same source.
	ErrConcurrent = errors.New("another replicator is running")
	// ErrLayoutMismatch: the source exists with the other layout.
	ErrLayoutMismatch = errors.New("layout mismatch")
	// ErrSchemaTooNew: the schema was migrated by a newer evstore.
	ErrSchemaTooNew = errors.New("schema is newer than this evstore")
	// ErrSourceActive: Options.NewSource would archive a source that was
	// advanced recently (within Options.ActiveWindow) by another log. The
	// usual cause is two devices sharing a source name (cloned images);
	// archiving would make them take the name from each other in turn.
	ErrSourceActive = errors.New("source is in use by another log")
	// ErrGaveUp: Options.Once and PostgreSQL stayed unreachable (or kept
	// failing) for Options.RetryFor. The error wraps the last failure.
	ErrGaveUp = errors.New("gave up replicating")
	// ErrInterrupted: Options.Once and ctx ended before PostgreSQL held
	// everything; the next run resumes where PostgreSQL stands. The error
	// wraps ctx's error too.
	ErrInterrupted = errors.New("interrupted before catching up")
)

// Error is a permanent replication failure with what was found and what the
// operator can do about it. It unwraps to one of the sentinels above.
type Error struct {
	Kind   error  // one of the sentinel errors
	Source string // the source name, if any
	Detail string // what was found
	Hint   string // what to do
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Source != "" {
		fmt.Fprintf(&b, " for source %q", e.Source)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrStoreMismatch) and friends hold.
func (e *Error) Unwrap() error { return e.Kind }

// localError marks a failure of the local log (a corrupt record, a closed
// store): retrying the same read would fail the same way.
type localError struct{ err error }

func (e *localError) Error() string { return "local log: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// permanent reports whether retrying err is pointless. Everything not known
// to be permanent is retried: an outage must never stop a replicator, while
// a misconfiguration is logged every ErrorLogInterval until fixed.
func permanent(err error) bool {
	var e *Error
	var le *localError
	switch {
	case err == nil:
		return false
	case errors.As(err, &e), errors.As(err, &le), errors.Is(err, format.ErrCorrupt):
		return true
	case errors.Is(err, context.Canceled):
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false // no answer from the server (refused, timed out, reset): an outage
	}
	switch class := pe.Code[:min(2, len(pe.Code))]; {
	case class == "28": // invalid authorization
		return true
	case pe.Code == "3D000": // no such database
		return true
	case class == "42":
		// Syntax or access rule: permission denied, a reserved schema
		// name (pg_catalog), an unknown setting in the URL. Undefined
		// table is the exception: a schema dropped under a running
		// replicator is migrated again by the next session.
		return pe.Code != "42P01"
	case class == "22", class == "23":
		// Data or constraint error that survived the JSON fallback:
		// the same batch would fail again forever.
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// The server refused the connection for a reason of its own. Only
		// these classes can pass: too many connections or out of memory
		// (53), shutting down or starting up (57), a system error (58), a
		// connection problem (08), an internal error (XX).
		switch pe.Code[:min(2, len(pe.Code))] {
		case "53", "57", "58", "08", "XX":
			return false
		}
		return true
	}
	return false
}

var (
	kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	// urlPassword finds the password of a URL that net/url refuses (a bad
	// port, an unescaped character): up to the last '@', since an
	// unescaped password may itself contain one.
	urlPassword = regexp.MustCompile(`(?i)^([a-z][a-z0-9+.-]*://[^:@/]*:)(.*)@`)
)

// RedactURL returns a PostgreSQL connection string fit for logs: the
// password of a URL, or a password=... pair of a key/value string, becomes
// "xxxxx".
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	s = urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	return kvPassword.ReplaceAllString(s, "${1}xxxxx")
}
