package replicate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// liveRuns holds the holder ids of the Runs alive in this process. It is
// process state by nature: it tells a sibling Run on the same log (alive)
// from an earlier Run of this process that could not release its claim.
var liveRuns sync.Map // uuid.UUID -> struct{}

// holder identifies one Run in the source row (holder_* columns). One
// replicator per source comes from this claim, checked and renewed by every
// batch transaction under the source row's lock, and not from a session
// lock, which a transaction-pooling proxy cannot keep.
type holder struct {
	id   uuid.UUID
	host string
	pid  int
	log  string // absolute path of the local log
}

func newHolder(store string) holder {
	host, _ := os.Hostname()
	if abs, err := filepath.Abs(store); err == nil {
		store = abs
	}
	return holder{id: uuid.New(), host: host, pid: os.Getpid(), log: store}
}

// otherHolder is the claim of another Run found in the source row.
type otherHolder struct {
	id    uuid.UUID
	host  string
	pid   int32
	log   string
	until time.Time
}

func (o *otherHolder) String() string {
	return fmt.Sprintf("evstore pid %d on host %q (log %s)", o.pid, o.host, o.log)
}

// predecessor reports whether o is an earlier run of this very log on this
// machine, which must be dead: the log's file lock admits one process, and
// this one holds it. Such a claim is taken over at once, so a replicator
// restarted after a crash does not wait for the claim to lapse. A Run of
// this same process that is still alive is not a predecessor.
func (h holder) predecessor(o *otherHolder) bool {
	if o.host != h.host || o.log != h.log {
		return false
	}
	if int(o.pid) != h.pid {
		return true
	}
	_, alive := liveRuns.Load(o.id)
	return !alive
}

// lease is how long a claim lasts without a batch or heartbeat renewing
// it: three heartbeats, so a follower that is merely idle keeps it.
func (r *replicator) lease() float64 {
	return (3 * r.o.HeartbeatInterval).Seconds()
}

// contact is what every batch, heartbeat and claim records in the source
// row for the fleet view: the local head, the commit time of the oldest
// event not yet shipped (nil when caught up) and this evstore's version.
func (r *replicator) contact(shipped uint64) (head uint64, oldest *time.Time) {
	head = r.store.Head()
	if head > shipped {
		if ev, err := eventAt(r.store, shipped+1); err == nil {
			t := ev.Time
			oldest = &t
		}
	}
	return head, oldest
}

// hold writes this Run's claim and contact details into the locked source
// row, in the caller's transaction.
func (r *replicator) hold(ctx context.Context, tx pgx.Tx, shipped uint64) error {
	head, oldest := r.contact(shipped)
	_, err := tx.Exec(ctx, "UPDATE "+r.schema+".sources SET holder_id = $2, holder_host = $3, holder_pid = $4, holder_log = $5, "+
		"holder_until = now() + make_interval(secs => $6), last_seen = now(), device_head = $7, oldest_pending = $8, evstore_version = $9 WHERE name = $1",
		r.o.Source, r.h.id, r.h.host, int32(r.h.pid), r.h.log, r.lease(), int64(head), oldest, Version())
	return err
}

// heartbeat renews the claim and records the device's head while there is
// nothing to ship. Finding the claim gone means another replicator took the
// source over: this one must stop.
func (r *replicator) heartbeat(ctx context.Context, conn *pgx.Conn, shipped uint64) error {
	ctx, cancel := context.WithTimeout(ctx, r.o.BatchTimeout)
	defer cancel()
	head, oldest := r.contact(shipped)
	tag, err := conn.Exec(ctx, "UPDATE "+r.schema+".sources SET holder_until = now() + make_interval(secs => $3), last_seen = now(), "+
		"device_head = $4, oldest_pending = $5, evstore_version = $6 WHERE name = $1 AND holder_id = $2",
		r.o.Source, r.h.id, r.lease(), int64(head), oldest, Version())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return &Error{Kind: ErrConcurrent, Source: r.o.Source,
			Detail: "another replicator took the source over while this one was idle",
			Hint:   "stop one of them: two replicators for one source take it from each other"}
	}
	return nil
}

// release gives up the claim when Run ends, so that another replicator
// (a replacement device, an operator's one-off run) need not wait for it to
// lapse. Best effort: a claim not released lapses after the lease.
func (r *replicator) release(conn *pgx.Conn, shipped uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	head, oldest := r.contact(shipped)
	conn.Exec(ctx, "UPDATE "+r.schema+".sources SET holder_id = NULL, holder_until = NULL, last_seen = now(), "+
		"device_head = $3, oldest_pending = $4, evstore_version = $5 WHERE name = $1 AND holder_id = $2",
		r.o.Source, r.h.id, int64(head), oldest, Version())
}

// Version is the evstore version recorded in the source row (and shown by
// the fleet view): the module version this binary was built with, or the
// VCS revision of a development build.
func Version() string {
	versionOnce.Do(func() {
		version = "devel"
		info, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		mod := &info.Main
		if mod.Path != "github.com/evstore/evstore" {
			for _, d := range info.Deps {
				if d.Path == "github.com/evstore/evstore" {
					mod = d
				}
			}
		}
		if mod.Version != "" && mod.Version != "(devel)" {
			version = mod.Version
			return
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				version = "devel-" + s.Value[:12]
			}
		}
	})
	return version
}

var (
	versionOnce sync.Once
	version     string
)
