package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
)

// Fleet workload shape: devices simulated in this process, each a log of
// its own appending fleetRate events per second and following it with
// replicate.Run, into one schema.
const (
	fleetDevices  = 1000
	fleetRate     = 3
	fleetFlush    = time.Second // Options.FlushInterval: at most ~1 batch per device per second
	fleetSampleAt = 250 * time.Millisecond
)

// fleetWorkload runs the simulated fleet against cfg.To or, with
// cfg.FleetVia (a PgBouncer in transaction mode in front of the same
// server), through the pooler: one run per invocation, since a direct run
// of a large fleet takes every connection the server has. The row reports
// the events/s that reached PostgreSQL, the per-device lag percentiles
// (p50/p95/p99 columns, sampled every 250ms at steady state), the peak of
// server connections, and whether every source was exact afterwards.
func fleetWorkload(ctx context.Context, env *workloadEnv) ([]Result, error) {
	if env.cfg.To == "" {
		return []Result{{Workload: "fleet", Skipped: true, Note: "skipped: needs a PostgreSQL URL (--to or --baseline)"}}, nil
	}
	name, url := "fleet", env.cfg.To
	if env.cfg.FleetVia != "" {
		name, url = "fleet-pgbouncer", env.cfg.FleetVia
	}
	r, err := fleetRun(ctx, env, name, url)
	if err != nil {
		return nil, err
	}
	return []Result{r}, nil
}

func fleetRun(ctx context.Context, env *workloadEnv, name, url string) (Result, error) {
	devices := env.cfg.FleetDevices
	if devices <= 0 {
		devices = fleetDevices
	}
	devices = max(int(float64(devices)*env.cfg.Scale), 5)
	capped := ""
	if url == env.cfg.To {
		// Directly, every device holds a server connection while it ships:
		// more devices than the server has free connections would measure
		// refusals, not replication (and starve everyone else on it).
		free, err := freeConnections(ctx, env.cfg.To)
		if err != nil {
			return Result{}, err
		}
		if devices > free {
			capped = fmt.Sprintf("; %d devices asked, capped at the server's %d free connections (pass --fleet-via a PgBouncer for more)", devices, free)
			devices = max(free, 1)
		}
	}
	tag := fmt.Sprintf("%08x", rand.Uint32())
	schema := "evstore_bench_fleet_" + tag
	// Sources (and so application names) carry the run's tag: a pooler's
	// idle server connections from an earlier run must not be counted.
	sourceName := func(i int) string { return fmt.Sprintf("fleet-%s-%05d", tag, i) }
	defer dropSchema(env.cfg.To, schema)
	dir, err := os.MkdirTemp(env.dir, name+"-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	// The server side is measured; the devices' own fsyncs (thousands per
	// second on this one machine) would only slow the simulation down.
	stores := make([]*local.Store, devices)
	for i := range stores {
		if stores[i], err = local.Open(filepath.Join(dir, fmt.Sprintf("dev-%05d.db", i)), local.Options{NoSync: true}); err != nil {
			return Result{}, err
		}
		defer stores[i].Close()
	}
	// The schema exists before the devices start, as in a running fleet.
	if _, err := replicate.Migrate(ctx, env.cfg.To, schema); err != nil {
		return Result{}, err
	}
	monitor, err := pgx.Connect(ctx, env.cfg.To)
	if err != nil {
		return Result{}, err
	}
	defer monitor.Close(context.WithoutCancel(ctx))

	rctx, stopReplicators := context.WithCancel(ctx)
	defer stopReplicators()
	actx, stopAppends := context.WithCancel(ctx)
	defer stopAppends()
	metrics := make([]*replicate.Metrics, devices)
	var wg, appenders sync.WaitGroup
	var failures atomic.Int64
	var firstErr atomic.Pointer[error]
	for i := range devices {
		metrics[i] = new(replicate.Metrics)
		o := replicate.Options{URL: url, Schema: schema, Source: sourceName(i), FlushInterval: fleetFlush,
			Metrics: metrics[i], LockWait: time.Minute}
		wg.Go(func() {
			if err := replicate.Run(rctx, stores[i], o); err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, &err)
			}
		})
		appenders.Go(func() { appendAtRate(actx, stores[i], i) })
	}

	start := time.Now()
	warmup := min(5*time.Second, env.cfg.Duration/4)
	steady := start.Add(warmup)
	end := start.Add(warmup + env.cfg.Duration)
	var lags []time.Duration
	var shippedAtSteady, shippedAtEnd, batchesAtSteady, batchesAtEnd uint64
	peakConns := 0
	tick := time.NewTicker(fleetSampleAt)
	for now := range tick.C {
		if ctx.Err() != nil {
			tick.Stop()
			return Result{}, ctx.Err()
		}
		if now.After(end) {
			shippedAtEnd, batchesAtEnd = shipped(metrics)
			break
		}
		if now.Before(steady) {
			continue
		}
		if shippedAtSteady == 0 {
			shippedAtSteady, batchesAtSteady = shipped(metrics)
		}
		for _, m := range metrics {
			lags = append(lags, time.Duration(m.LagSeconds(now)*float64(time.Second)))
		}
		var n int
		if err := monitor.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", "evstore replicate "+sourceName(0)[:len("fleet-")+8]+"-%").Scan(&n); err == nil {
			peakConns = max(peakConns, n)
		}
	}
	tick.Stop()
	measured := time.Since(steady)

	// Stop appending, let every device catch up, then check the rows.
	stopAppends()
	appenders.Wait()
	caughtUp := time.Now().Add(2 * time.Minute)
	for time.Now().Before(caughtUp) && !allCaughtUp(metrics, stores) && failures.Load() == 0 {
		time.Sleep(100 * time.Millisecond)
	}
	stopReplicators()
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return Result{}, fmt.Errorf("%s: %d replicators failed, the first with: %w", name, failures.Load(), *p)
	}
	exact, err := fleetExact(ctx, monitor, schema, stores, sourceName)
	if err != nil {
		return Result{}, err
	}
	if exact < devices {
		r := Result{Workload: name, Errors: int64(devices - exact)}
		r.Note = fmt.Sprintf("%d devices: only %d sources exact 2 minutes after the appends stopped (the rest still behind)", devices, exact) + capped
		return r, nil
	}

	slices.Sort(lags)
	// ops are the batch transactions committed at the central side.
	r := Result{Workload: name, Seconds: measured.Seconds(), Events: int64(shippedAtEnd - shippedAtSteady), Ops: int64(batchesAtEnd - batchesAtSteady)}
	r.EventsPerSec = float64(r.Events) / measured.Seconds()
	r.OpsPerSec = float64(r.Ops) / measured.Seconds()
	r.P50ms, r.P95ms, r.P99ms = quantileMs(lags, 0.50), quantileMs(lags, 0.95), quantileMs(lags, 0.99)
	r.Extra = map[string]float64{"devices": float64(devices), "server_conns_peak": float64(peakConns), "lag_max_ms": quantileMs(lags, 1)}
	r.Note = fmt.Sprintf("%d devices × %d events/s, FlushInterval %v; ops = batch transactions; p50/p95/p99 = per-device lag (age of the oldest event not yet in PostgreSQL), "+
		"sampled every %v over %v after a %v warm-up; peak %d server connections; every source exact afterwards",
		devices, fleetRate, fleetFlush, fleetSampleAt, measured.Round(time.Second), warmup, peakConns)
	r.Note += capped
	return r, nil
}

// appendAtRate appends one event every 1/fleetRate s, starting at a random
// phase so devices do not tick together.
func appendAtRate(ctx context.Context, s *local.Store, dev int) {
	every := time.Second / fleetRate
	select {
	case <-time.After(rand.N(every)):
	case <-ctx.Done():
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		ev := format.EventData{Stream: fmt.Sprintf("till-%d", n%10), Type: "Sold",
			Data: fmt.Appendf(nil, `{"device":%d,"n":%d,"amount":%d,"currency":"EUR","sku":"sku-%04d"}`, dev, n, 100+n%900, n%5000)}
		if _, err := s.Append(ctx, []format.EventData{ev}); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// shipped sums the events and batches the devices have committed.
func shipped(ms []*replicate.Metrics) (events, batches uint64) {
	for _, m := range ms {
		events += m.ReplicatedPosition.Load()
		batches += m.Batches.Load()
	}
	return events, batches
}

func allCaughtUp(ms []*replicate.Metrics, stores []*local.Store) bool {
	for i, m := range ms {
		if m.ReplicatedPosition.Load() != stores[i].Head() {
			return false
		}
	}
	return true
}

// fleetExact counts the sources holding exactly positions 1..head of
// their log.
func fleetExact(ctx context.Context, conn *pgx.Conn, schema string, stores []*local.Store, sourceName func(int) string) (int, error) {
	rows, err := conn.Query(ctx, "SELECT source, count(*), min(position), max(position) FROM "+pgx.Identifier{schema}.Sanitize()+".events GROUP BY source")
	if err != nil {
		return 0, err
	}
	got := map[string][3]int64{}
	for rows.Next() {
		var src string
		var n, minPos, maxPos int64
		if err := rows.Scan(&src, &n, &minPos, &maxPos); err != nil {
			return 0, err
		}
		got[src] = [3]int64{n, minPos, maxPos}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	exact := 0
	for i, s := range stores {
		h := int64(s.Head())
		if g := got[sourceName(i)]; g == [3]int64{h, min(h, 1), h} {
			exact++
		}
	}
	return exact, nil
}

// freeConnections is how many more connections the server at url accepts,
// keeping ten for everyone else.
func freeConnections(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var free int
	err = conn.QueryRow(ctx, "SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity)::int - 10").Scan(&free)
	return free, err
}
