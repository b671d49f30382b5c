package replicate

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// beginQuery starts every evstore transaction. The settings are SET LOCAL,
// so they last for this transaction only: a transaction-pooling proxy
// (PgBouncer) hands the server connection to other clients afterwards, and
// a session SET would leak to them or be lost. They end a transaction left
// idle by a stuck client (freeing the source row it locked) and make the
// server notice a vanished client within about a minute.
const beginQuery = "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '60s'; " +
	"SET LOCAL tcp_keepalives_idle = 30; SET LOCAL tcp_keepalives_interval = 10; SET LOCAL tcp_keepalives_count = 3"

// begin starts a transaction with the settings above.
func begin(ctx context.Context, conn *pgx.Conn) (pgx.Tx, error) {
	return conn.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginQuery})
}

// connConfig parses the URL and sets what every evstore session wants: a
// name in pg_stat_activity, a connect timeout, a byte counter, and a query
// mode that keeps no state on the server between transactions.
//
// The mode is pgx's QueryExecModeCacheDescribe unless the URL sets
// default_query_exec_mode: statements go as the unnamed statement, parsed,
// bound and run in one round trip, with the parameter and result types
// cached on the client. pgx's default (cache_statement) creates named
// prepared statements, which live in one server session; behind PgBouncer
// in transaction mode the next transaction may run on another server
// connection, where they do not exist (or do, under the same name:
// "prepared statement stmtcache_… already exists"). Of the modes without
// server state, cache_describe keeps the binary formats (a frame goes as
// its bytes, not as hex text twice its size; COPY needs no description
// round trip per batch), unlike exec and simple_protocol. Its one caveat,
// a cached description going stale when a column changes type under a
// running client, cannot happen with evstore's own statements: migrations
// only add tables and columns.
func connConfig(rawURL, appName string, sent *atomic.Uint64) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx redacts the password in parse errors; say which URL anyway.
		return nil, fmt.Errorf("replicate: PostgreSQL URL %s: %w", RedactURL(rawURL), err)
	}
	if !strings.Contains(rawURL, "default_query_exec_mode") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = appName
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
