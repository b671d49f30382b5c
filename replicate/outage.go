package replicate

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// headWatchInterval is how often Run refreshes the head in its metrics
// outside a session (during an outage the lag must keep growing).
const headWatchInterval = time.Second

// watchHead keeps HeadPosition (and the age of the oldest event PostgreSQL
// lacks) current for as long as Run lasts, sessions or not. Before the
// first session reached PostgreSQL the replicated position is unknown, so
// nothing is reported: a lag computed from zero would be a false alarm.
func (r *replicator) watchHead(ctx context.Context) {
	t := time.NewTicker(headWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.contacted.Load() {
			continue
		}
		head := r.store.Head()
		r.m.HeadPosition.Store(head)
		rep := r.m.ReplicatedPosition.Load()
		if head > rep && r.m.OldestPending.Load() == 0 {
			if ev, err := eventAt(r.store, rep+1); err == nil {
				r.m.OldestPending.CompareAndSwap(0, ev.Time.UnixNano())
			}
		}
	}
}

// wait sleeps d before the next attempt and reports whether ctx is still
// alive. When the last attempt could not reach the server at all, it
// probes the server with a plain TCP connection every ProbeInterval and
// ends the wait as soon as one succeeds: the backoff spaces out sessions,
// which cost a login and a migration check, but must not keep a replicator
// idle for minutes after the network is back.
func (r *replicator) wait(ctx context.Context, d time.Duration, err error) bool {
	if r.o.ProbeInterval <= 0 || !unreachable(err) {
		return sleep(ctx, d)
	}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		if !sleep(ctx, min(r.o.ProbeInterval, left)) {
			return false
		}
		if time.Until(deadline) > 0 && r.probe(ctx) {
			r.log.Info("PostgreSQL answers again, reconnecting")
			return true
		}
	}
}

// unreachable reports a failure to reach the server: a connect error the
// server did not answer (refused, timed out, no route).
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	return errors.As(err, &ce) && !errors.As(err, &pe)
}

// probe reports whether any of the configured servers accepts a TCP (or
// Unix socket) connection. It sends nothing.
func (r *replicator) probe(ctx context.Context) bool {
	timeout := max(r.o.ProbeInterval, time.Second)
	targets := []struct {
		host string
		port uint16
	}{{r.cfg.Host, r.cfg.Port}}
	for _, fb := range r.cfg.Fallbacks {
		targets = append(targets, struct {
			host string
			port uint16
		}{fb.Host, fb.Port})
	}
	for _, t := range targets {
		network, addr := "tcp", net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
		if strings.HasPrefix(t.host, "/") {
			network, addr = "unix", filepath.Join(t.host, ".s.PGSQL."+strconv.Itoa(int(t.port)))
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := r.cfg.DialFunc(pctx, network, addr)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}
