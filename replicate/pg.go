package replicate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sessionSettings make PostgreSQL notice a vanished replicator (and free its
// source lock) within about a minute instead of the system's two hours, and
// end a transaction left idle by a stuck client. They are sent after
// connecting rather than as startup parameters, which poolers may refuse,
// and failures are ignored: they only speed up recovery.
const sessionSettings = "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3; " +
	"SET idle_in_transaction_session_timeout = '60s'"

// connConfig parses the URL and sets what every evstore session wants: a
// name in pg_stat_activity, the session settings above, a connect timeout
// and a byte counter.
func connConfig(rawURL, appName string, sent *atomic.Uint64) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts the password in parse errors; say which URL anyway.
		return nil, fmt.Errorf("replicate: PostgreSQL URL %s: %w", RedactURL(rawURL), err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = appName
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgconn.PgConn) error {
		c.Exec(ctx, sessionSettings).ReadAll()
		return nil
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if sent != nil {
		dial := cfg.DialFunc
		cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, sent: sent}, nil
		}
	}
	return cfg, nil
}

// countingConn counts the bytes written to PostgreSQL, protocol included:
// that is what "bytes sent" means in the metrics and the layout comparison.
type countingConn struct {
	net.Conn
	sent *atomic.Uint64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(uint64(n))
	return n, err
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// errLockBusy is the transient form of ErrConcurrent: the lock is held by a
// session that is probably our own previous one, not yet reaped.
var errLockBusy = errors.New("source lock still held by a previous session")

// lockSource takes the session-level advisory lock that makes one replicator
// per source. It is released when the session ends, including when the
// process dies and the server notices the closed socket. It waits up to
// wait for a holder to go away: a replicator killed a moment ago may still
// have a backend on the server.
func lockSource(ctx context.Context, conn *pgx.Conn, schema, source string, wait time.Duration) (holder *lockHolderInfo, err error) {
	key := lockKey("source", schema, source)
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			return nil, err
		}
		if ok {
			return nil, nil
		}
		if time.Now().After(deadline) {
			return lockHolder(ctx, conn, key), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lockHolderInfo describes the session holding a source lock.
type lockHolderInfo struct {
	pid  int32 // 0 when the role may not see it
	desc string
}

// hint tells the operator how to get rid of the holder.
func (h *lockHolderInfo) hint() string {
	kill := "end it with SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'evstore replicate%'"
	if h.pid != 0 {
		kill = fmt.Sprintf("end it with SELECT pg_terminate_backend(%d)", h.pid)
	}
	return "stop the other replicator first; if it is gone, PostgreSQL frees the lock within about a minute, or " + kill
}

// lockHolder finds the backend holding an advisory lock, for the error
// message; best effort.
func lockHolder(ctx context.Context, conn *pgx.Conn, key int64) *lockHolderInfo {
	var (
		pid          int32
		app, addr    string
		backendStart time.Time
	)
	err := conn.QueryRow(ctx, `
		SELECT a.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid`,
		key).Scan(&pid, &app, &addr, &backendStart)
	if err != nil {
		return &lockHolderInfo{desc: "a session this role cannot see"}
	}
	return &lockHolderInfo{pid: pid, desc: fmt.Sprintf("PostgreSQL backend pid %d (%q from %s, connected %s)",
		pid, app, addr, backendStart.UTC().Format(time.RFC3339))}
}
