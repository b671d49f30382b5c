package local

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Defaults for zero [Options] fields.
const (
	DefaultLockTimeout   = time.Second
	DefaultMaxEventBytes = 4 << 20
	// DefaultMaxGroupEvents bounds one group commit, so a burst of writers
	// cannot build a transaction that holds everyone's answer for long.
	DefaultMaxGroupEvents = 16384
)

// Options configure a [Store]. The zero value is durable and safe.
type Options struct {
	// NoSync skips the fsync after each group commit. Appends get several
	// times faster, but a power loss or kernel crash can lose commits that
	// were acknowledged; the file stays consistent either way. A crash of the
	// process alone loses nothing.
	NoSync bool
	// LockTimeout is how long Open waits for another process to release
	// the file before it fails with ErrLocked. Default 1s.
	LockTimeout time.Duration
	// MaxEventBytes caps one event's data plus metadata. Default 4 MiB.
	// Larger events make every reader of their stream pay for them.
	MaxEventBytes int
	// MaxGroupEvents caps the events in one group commit. Larger groups
	// amortise fsync better but delay the first caller in the group.
	// Default 16384.
	MaxGroupEvents int
	// InitialMmapSize pre-sizes bbolt's memory map, in bytes. Remapping as
	// the file grows waits for every open read transaction; a map larger
	// than the file avoids that at the cost of address space. Default 0
	// (grow on demand).
	InitialMmapSize int
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Clock gives the time stamped on the events of each group commit.
	// Default time.Now: an event's time is its commit time. Tests set it
	// to get known times; it is called once per group commit, by the
	// writer goroutine, and its result is stored in UTC.
	Clock func() time.Time
	// ReadOnly opens an existing file without writing anything to it: no
	// bucket is created, no transaction committed, the file's bytes stay
	// as they are, and a file the process may only read can be opened.
	// Several read-only opens may share a file (a shared lock), but not
	// with a writer. Writes fail with [ErrReadOnly].
	ReadOnly bool
	// StoreID is the id a file created by Open gets (UUID text), instead
	// of a new random one. A restore sets it so the rebuilt log keeps its
	// identity (replicas know a log by its id). An existing file with
	// another id is refused with ErrStoreID.
	StoreID string

	lockBusy func() // tests: called each time the lock is found taken
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxEventBytes <= 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxGroupEvents <= 0 {
		o.MaxGroupEvents = DefaultMaxGroupEvents
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Store is the local event log. It is safe for concurrent use; one Store per
// file per process (bbolt holds an exclusive file lock).
//
// Who touches what: the fields under "set at Open" never change after
// Open returns. The writer goroutine alone writes head, arena and failed,
// and commits every write transaction; other goroutines only read head and
// failed (atomically) and run read transactions. No lock is ever taken
// while another is held, so there is no lock order to respect: notifyMu
// guards one channel swap; mu (read side) is held across the send on reqs,
// which the writer keeps draining until Close, and never across a bbolt
// transaction.
type Store struct {
	// Set at Open.
	db      *bolt.DB
	path    string
	id      string
	created time.Time
	opts    Options

	head atomic.Uint64 // last committed position; written only by the writer

	mu      sync.RWMutex // guards closed against sends on reqs
	closed  bool
	reqs    chan *request
	stopped chan struct{} // closed when the writer has drained and exited
	closing chan struct{} // closed by Close, wakes subscribers

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after each commit

	arena []byte // the writer's encoding buffer, reused across commits; writer only

	failed atomic.Pointer[CommitError] // set by the writer after a failed commit
}

// fail makes every later write fail with err.
func (s *Store) fail(err *CommitError) { s.failed.CompareAndSwap(nil, err) }

// failure is the answer to a write once a commit failed, nil while the
// store is healthy.
func (s *Store) failure() error {
	if err := s.failed.Load(); err != nil {
		return &RefusedError{Commit: err}
	}
	return nil
}

// Open opens or creates the log at path.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	// Before anything opens it: opening a FIFO for reading blocks until a
	// writer comes, and a device or a directory is never a database.
	if err := checkRegular(path); err != nil {
		return nil, err
	}
	if err := checkTruncated(path); err != nil {
		return nil, &OpenError{Path: path, Err: err, Hint: "restore it from a backup"}
	}
	if opts.StoreID != "" {
		id, err := uuid.Parse(opts.StoreID)
		if err != nil {
			return nil, &format.InvalidError{Field: "Options.StoreID", Value: opts.StoreID, Reason: "is not a UUID"}
		}
		opts.StoreID = id.String()
	}
	db, err := openBolt(path, &bolt.Options{
		ReadOnly:     opts.ReadOnly,
		Timeout:      opts.LockTimeout,
		NoSync:       opts.NoSync,
		FreelistType: bolt.FreelistMapType,
		// A synced freelist costs one page per commit; without it bbolt
		// walks every page at open, and panics on a damaged page in a
		// goroutine no caller can recover.
		NoFreelistSync: false,
		// Stats reports free pages; a read-only open loads the freelist
		// only when asked to.
		PreLoadFreelist: true,
		InitialMmapSize: opts.InitialMmapSize,
		OpenFile:        lockingOpener(opts.LockTimeout, opts.lockBusy),
	})
	if err != nil {
		if opts.ReadOnly && errors.Is(err, fs.ErrNotExist) {
			return nil, &OpenError{Path: path, Err: err, Hint: "check the path: a read-only open never creates a database"}
		}
		return nil, openError(path, err)
	}
	s := &Store{
		db:      db,
		path:    path,
		opts:    opts,
		reqs:    make(chan *request, 4096),
		stopped: make(chan struct{}),
		closing: make(chan struct{}),
		notify:  make(chan struct{}),
	}
	initTx := s.update
	if opts.ReadOnly {
		initTx = s.view
	}
	if err := initTx(s.init); err != nil {
		db.Close()
		switch {
		case errors.Is(err, ErrStoreID):
			return nil, &OpenError{Path: path, Err: err, Hint: "open another path, or leave Options.StoreID empty"}
		case errors.Is(err, ErrNewerLayout):
			return nil, &OpenError{Path: path, Err: err, Hint: hintNewer}
		case errors.Is(err, ErrCorruptStore):
			return nil, &OpenError{Path: path, Err: err, Hint: hintDamaged}
		case errors.Is(err, ErrNotStore):
			return nil, &OpenError{Path: path, Err: err, Hint: hintNotStore}
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	go s.writer()
	return s, nil
}

func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer recoverCorrupt(&err)
	return bolt.Open(path, 0o600, o)
}

// Advice for files Open refuses.
const (
	hintNotStore = "check the path names an evstore file"
	hintDamaged  = "the file looks like a damaged evstore database: restore it from a backup"
	hintNewer    = "upgrade evstore to a version that reads it"
)

func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &OpenError{Path: path, Err: ErrLocked, Hint: "close the other process that has it open, or open another path"}
	case errors.Is(err, berrors.ErrVersionMismatch):
		return &OpenError{Path: path, Err: fmt.Errorf("%w: bbolt file format: %v", ErrNewerLayout, err), Hint: hintNewer}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum):
		if looksLikeBolt(path) {
			return &OpenError{Path: path, Err: fmt.Errorf("%w: both meta pages are unreadable: %v", ErrCorruptStore, err), Hint: hintDamaged}
		}
		return &OpenError{Path: path, Err: fmt.Errorf("%w: %v", ErrNotStore, err), Hint: hintNotStore}
	case errors.Is(err, fs.ErrPermission):
		return &OpenError{Path: path, Err: err, Hint: "check the file's and its directory's permissions"}
	case errors.Is(err, fs.ErrNotExist):
		return &OpenError{Path: path, Err: err, Hint: "create the directory first"}
	}
	return &OpenError{Path: path, Err: err}
}

// init creates the buckets of a new file or checks those of an existing one.
func (s *Store) init(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil && !tx.Writable() {
		return fmt.Errorf("%w: no evstore metadata (a read-only open never creates a database)", ErrNotStore)
	}
	if meta == nil {
		hasOther := false
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { hasOther = true; return nil })
		if hasOther {
			return fmt.Errorf("%w: a bbolt file without evstore's metadata", ErrNotStore)
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		now := s.opts.Clock().UTC()
		for k, v := range map[string][]byte{
			string(metaKeyFormat):  binary.BigEndian.AppendUint32(nil, layoutVersion),
			string(metaKeyID):      []byte(cmp.Or(s.opts.StoreID, uuid.New().String())),
			string(metaKeyCreated): []byte(now.Format(time.RFC3339Nano)),
		} {
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
	}
	switch v := meta.Get(metaKeyFormat); {
	case len(v) != 4:
		return fmt.Errorf("%w: layout version %x", ErrCorruptStore, v)
	case binary.BigEndian.Uint32(v) > layoutVersion:
		return fmt.Errorf("%w: layout version %d, this build reads %d", ErrNewerLayout, binary.BigEndian.Uint32(v), layoutVersion)
	case binary.BigEndian.Uint32(v) < minLayoutVersion:
		return fmt.Errorf("%w: unsupported layout version %d (this build reads %d to %d)", ErrNotStore, binary.BigEndian.Uint32(v), minLayoutVersion, layoutVersion)
	case binary.BigEndian.Uint32(v) != layoutVersion && tx.Writable():
		// Older entries stay as they are; the mark keeps older builds,
		// which cannot read the newer entries, from opening the file. A
		// read-only open reads an older layout as it is.
		if err := meta.Put(metaKeyFormat, binary.BigEndian.AppendUint32(nil, layoutVersion)); err != nil {
			return err
		}
	}
	s.id = string(meta.Get(metaKeyID))
	if _, err := uuid.Parse(s.id); err != nil {
		return fmt.Errorf("%w: store id %q", ErrCorruptStore, s.id)
	}
	if s.opts.StoreID != "" && !strings.EqualFold(s.opts.StoreID, s.id) {
		return fmt.Errorf("%w: the file is store %s, Options.StoreID asks for %s", ErrStoreID, s.id, s.opts.StoreID)
	}
	var err error
	if s.created, err = time.Parse(time.RFC3339Nano, string(meta.Get(metaKeyCreated))); err != nil {
		return fmt.Errorf("%w: creation time: %v", ErrCorruptStore, err)
	}
	for _, name := range [][]byte{bucketLog, bucketVersions, bucketStreams, bucketIdem} {
		if !tx.Writable() {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: bucket %q is missing", ErrCorruptStore, name)
			}
			continue
		}
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if err := initKeyAnchors(tx); err != nil {
		return err
	}
	if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
		if len(k) != 8 {
			return fmt.Errorf("%w: log key %x", ErrCorruptStore, k)
		}
		s.head.Store(binary.BigEndian.Uint64(k))
	}
	return nil
}

// Close stops accepting appends, waits for those in flight to be committed
// and answered, ends live subscriptions and closes the file. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.stopped
	close(s.closing)
	return s.db.Close()
}

// ID is the store's random id, created when the file was created. It tells a
// replica which log it is receiving, so a wiped device that reuses a name is
// noticed.
func (s *Store) ID() string { return s.id }

// Created is when the file was created.
func (s *Store) Created() time.Time { return s.created }

// Path is the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Head is the position of the last committed event, 0 if the log is empty.
func (s *Store) Head() uint64 { return s.head.Load() }

// changed returns a channel that is closed at the next commit. Grab it
// before looking at the head, so a commit in between is never missed.
func (s *Store) changed() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

func (s *Store) broadcast() {
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// view runs fn in a read transaction, mapping bbolt's closed error and its
// panics on damaged pages.
func (s *Store) view(fn func(*bolt.Tx) error) (err error) {
	defer recoverCorrupt(&err)
	err = s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// recoverCorrupt turns the panics bbolt raises on a damaged page (string
// panics from its assertions and checks, or a runtime error while following
// a bad pointer) into an ErrCorruptStore error, so a damaged file is an
// error for the caller rather than a crash of the application that embeds
// the store. bbolt rolls the transaction back as the panic unwinds. Our own
// code in these transactions raises no string panics.
func recoverCorrupt(err *error) {
	p := recover()
	if p == nil {
		return
	}
	switch p.(type) {
	case string, runtime.Error:
		*err = fmt.Errorf("%w: %v", ErrCorruptStore, p)
	default:
		panic(p)
	}
}

func hasPrefix(k, p []byte) bool { return bytes.HasPrefix(k, p) }
