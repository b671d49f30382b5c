package replicate

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/evstore/evstore/format"
)

// Layout is how events are stored in PostgreSQL.
type Layout string

const (
	// LayoutRows stores one row per event in the events table, ready to
	// query. It is the default.
	LayoutRows Layout = "rows"
	// LayoutFrames stores one compressed frame per batch in the frames
	// table: several times fewer bytes on the wire and on disk, byte-exact,
	// but opaque to SQL until [Expand] turns the frames into rows.
	LayoutFrames Layout = "frames"
)

// ParseLayout accepts "rows" or "frames".
func ParseLayout(s string) (Layout, error) {
	switch Layout(s) {
	case LayoutRows, LayoutFrames:
		return Layout(s), nil
	}
	return "", fmt.Errorf("unknown layout %q: use rows or frames", s)
}

// Defaults. The batch sizes are large because a PostgreSQL transaction costs
// a few round trips and an fsync on the server: catching up a million events
// should take a hundred transactions, not a million.
const (
	DefaultSchema           = "evstore"
	DefaultBatchEvents      = 10_000
	DefaultBatchBytes       = 8 << 20
	DefaultFlushInterval    = 200 * time.Millisecond
	DefaultLockWait         = 5 * time.Second
	DefaultBatchTimeout     = time.Minute
	DefaultErrorLogInterval = 30 * time.Second
	DefaultPollInterval     = time.Second
	DefaultActiveWindow     = time.Hour
	DefaultRetryFor         = 2 * time.Minute
	DefaultProbeInterval    = time.Second
	DefaultIdleTimeout      = 10 * time.Second
	DefaultHeartbeat        = time.Minute
)

// Backoff controls the waits between attempts after a transient error: the
// first wait is Min, each next one doubles up to Max, and a random part of
// each (Jitter, a fraction from 0 to 1) spreads out replicators that failed
// together. Zero fields take the defaults 1s, 5m and 0.5; a negative Jitter
// means none (exact waits).
type Backoff struct {
	Min    time.Duration
	Max    time.Duration
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	b.Max = max(b.Max, b.Min)
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.5
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// Options configure [Run].
type Options struct {
	// URL is the PostgreSQL connection string (postgres://user:pass@host/db
	// or key=value form). Its password is never logged.
	URL string
	// Source names this log in PostgreSQL. Default: [DefaultSource], the
	// host name and the first 8 hex digits of the store id, so that cloned
	// devices sharing a host name do not share a source; a source created
	// under the bare host name by an older evstore for this same store is
	// kept. Each source belongs to one store id; see [ErrStoreMismatch].
	Source string
	// Schema holds evstore's tables. Default "evstore".
	Schema string
	// Layout of new sources; an existing source keeps the layout it was
	// created with. Default [LayoutRows].
	Layout Layout
	// Uncompressed stores frames without zstd ([LayoutFrames] only); for
	// debugging and measurements.
	Uncompressed bool
	// BatchEvents and BatchBytes cap one batch (one transaction). Bytes are
	// counted as payload, metadata and names. Defaults 10,000 and 8 MiB.
	BatchEvents int
	BatchBytes  int
	// FlushInterval is how long a partial batch waits for more events
	// before it is sent: new events reach PostgreSQL within about this
	// long of their commit. Default 200ms.
	FlushInterval time.Duration
	// Once replicates what the log held when Run started and returns;
	// otherwise Run follows the log until ctx ends.
	Once bool
	// NewSource allows Run to archive a source that does not match this log
	// (another store id, ahead of the log, or diverged) and start the name
	// afresh. The old rows are kept under "NAME@<UTC time>". Without it such
	// a mismatch is a permanent error. A matching source is never touched.
	// A source that another log advanced within ActiveWindow is not
	// archived either ([ErrSourceActive]) unless TakeOver is set.
	NewSource bool
	// TakeOver lets NewSource archive a source even if it was advanced
	// recently, and lets Run take a source whose claim another replicator
	// still holds: for when the other log is known to be gone (a device
	// replaced minutes after its last batch).
	TakeOver bool
	// ActiveWindow is how recent a source's last update must be for
	// NewSource to treat it as in use elsewhere. Default 1h.
	ActiveWindow time.Duration
	// RetryFor bounds how long a run with Once keeps retrying while no
	// attempt succeeds (PostgreSQL unreachable, say); it then returns
	// [ErrGaveUp]. Default 2m with Once; negative: retry forever. Without
	// Once, Run retries forever unless RetryFor is set (positive).
	RetryFor time.Duration
	// ProbeInterval: while waiting out a backoff after PostgreSQL could not
	// be reached, Run tries a plain TCP connection this often and
	// reconnects as soon as one succeeds, so the end of an outage is
	// noticed within about this long however long the backoff has grown.
	// Default 1s; negative disables probing.
	ProbeInterval time.Duration
	// Backoff after transient errors. Default 1s doubling to 5m, jitter 0.5.
	Backoff Backoff
	// LockWait is how long Run waits for another replicator's claim on
	// the source (see [ErrConcurrent]) when it starts. Default 5s.
	LockWait time.Duration
	// IdleTimeout: a follower closes its PostgreSQL connection after this
	// long without a batch or heartbeat, and connects again for the next
	// one, so that a fleet holds server connections only for the devices
	// shipping now. Default 10s; negative keeps the connection open.
	IdleTimeout time.Duration
	// HeartbeatInterval: a follower with nothing to ship records the
	// device's head and the time in the source row this often (the fleet
	// view, [Fleet]), renewing its claim on the source, which lapses after
	// three intervals without contact. Default 1m.
	HeartbeatInterval time.Duration
	// BatchTimeout bounds one batch transaction, so a connection that went
	// silent is noticed. Default 1m.
	BatchTimeout time.Duration
	// ErrorLogInterval: a transient error that keeps repeating is logged
	// at most this often (the rest at debug level). Default 30s.
	ErrorLogInterval time.Duration
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Progress, if set, is called from Run's goroutine when a session
	// starts and after every committed batch. It must return quickly.
	Progress func(ProgressInfo)
	// Metrics, if set, is kept up to date for the caller to export.
	Metrics *Metrics

	// onClaim, if set, is called inside the transaction that reconciles
	// the source at a session start, with the source row locked (tests
	// hold the transaction open with it).
	onClaim func()
}

// ProgressInfo reports where replication stands.
type ProgressInfo struct {
	Source   string
	Start    uint64 // replicated position when Run first connected
	Position uint64 // replicated through this position
	Head     uint64 // local head when the batch was sent
	Events   int    // events in the batch just committed; 0 on session start
	Bytes    int    // their approximate size
	CaughtUp bool   // Position reached Head
}

// Metrics are counters and gauges that Run keeps current. All fields are
// safe to read concurrently; [NewCollector] and [MetricsHandler] export them
// to Prometheus.
type Metrics struct {
	HeadPosition       atomic.Uint64 // local head
	ReplicatedPosition atomic.Uint64 // last position committed to PostgreSQL
	Batches            atomic.Uint64 // committed batches
	Events             atomic.Uint64 // committed events
	BytesSent          atomic.Uint64 // bytes written to the PostgreSQL socket, protocol included
	Errors             atomic.Uint64 // failed attempts, transient or not
	// OldestPending is the commit time (Unix nanoseconds) of the oldest
	// event not yet in PostgreSQL, 0 when caught up.
	OldestPending atomic.Int64
	// LastSuccess is when the last batch committed (Unix nanoseconds).
	LastSuccess atomic.Int64

	source atomic.Pointer[string]
}

// Source is the source name Run replicates to ("" before Run starts): the
// label of the exported series.
func (m *Metrics) Source() string {
	if p := m.source.Load(); p != nil {
		return *p
	}
	return ""
}

func (m *Metrics) setSource(s string) { m.source.Store(&s) }

// LagEvents is how many committed events PostgreSQL does not have yet.
func (m *Metrics) LagEvents() uint64 {
	h, r := m.HeadPosition.Load(), m.ReplicatedPosition.Load()
	if h > r {
		return h - r
	}
	return 0
}

// LagSeconds is the age of the oldest event PostgreSQL does not have yet, 0
// when caught up. During an outage it keeps growing.
func (m *Metrics) LagSeconds(now time.Time) float64 {
	t := m.OldestPending.Load()
	if t == 0 || m.LagEvents() == 0 {
		return 0
	}
	return max(0, now.Sub(time.Unix(0, t)).Seconds())
}

// DefaultSource is the source name of a log when Options.Source is empty:
// the host name, a dash and the first 8 hex digits of the store id. Cloned
// devices share a host name but not a store id.
func DefaultSource(storeID string) (string, error) {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("replicate: no source name and no host name to default to (%v): set Options.Source", err)
	}
	id := strings.ReplaceAll(storeID, "-", "")
	return hostPart(h) + id[:min(8, len(id))], nil
}

// hostPart is the host name as the default source names start with it,
// short enough to leave room for the store id and an archive suffix.
func hostPart(host string) string { return host[:min(len(host), 54)] + "-" }

func (o Options) withDefaults(storeID string) (Options, error) {
	if o.URL == "" {
		return o, errors.New("replicate: no PostgreSQL URL")
	}
	if o.Source == "" {
		name, err := DefaultSource(storeID)
		if err != nil {
			return o, err
		}
		o.Source = name
	}
	if err := checkName("source", o.Source); err != nil {
		return o, err
	}
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if err := checkName("schema", o.Schema); err != nil {
		return o, err
	}
	if o.Layout == "" {
		o.Layout = LayoutRows
	}
	if _, err := ParseLayout(string(o.Layout)); err != nil {
		return o, err
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = DefaultBatchEvents
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	// A frame must stay under the decoder's limit whatever one event's size.
	o.BatchBytes = min(o.BatchBytes, format.MaxFrameBody/2)
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeat
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = DefaultBatchTimeout
	}
	if o.ErrorLogInterval <= 0 {
		o.ErrorLogInterval = DefaultErrorLogInterval
	}
	if o.ActiveWindow <= 0 {
		o.ActiveWindow = DefaultActiveWindow
	}
	if o.RetryFor == 0 && o.Once {
		o.RetryFor = DefaultRetryFor
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = new(Metrics)
	}
	return o, nil
}

func (o ExpandOptions) withDefaults() (ExpandOptions, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if err := checkName("schema", o.Schema); err != nil {
		return o, err
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.BatchEvents <= 0 {
		o.BatchEvents = DefaultBatchEvents
	}
	o.Backoff = o.Backoff.withDefaults()
	if o.ErrorLogInterval <= 0 {
		o.ErrorLogInterval = DefaultErrorLogInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// checkName keeps names printable and short enough for PostgreSQL
// identifiers (schema) and for archive suffixes (source).
func checkName(what, s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("replicate: %s name %q must be 1 to 63 bytes", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("replicate: %s name %q contains a control character", what, s)
		}
	}
	return nil
}
