package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/replicate"
)

// replicateWorkload fills a log and replicates it once to PostgreSQL, into a
// schema of its own that is dropped afterwards. Without a URL it reports a
// skipped row rather than failing, so a run without PostgreSQL still covers
// everything else.
func replicateWorkload(ctx context.Context, env *workloadEnv, workload string) ([]Result, error) {
	layout := replicate.LayoutRows
	if workload == "replicate-frames" {
		layout = replicate.LayoutFrames
	}
	if env.cfg.To == "" {
		return []Result{{Workload: workload, Skipped: true, Note: "skipped: needs a PostgreSQL URL (--to or --baseline)"}}, nil
	}
	store, done, err := env.openStore(workload)
	if err != nil {
		return nil, err
	}
	defer done()
	total := env.scaled(1_000_000, 100)
	if err := fillLog(ctx, store, total, min(1000, total)); err != nil {
		return nil, err
	}
	schema := fmt.Sprintf("evstore_bench_repl_%08x", rand.Uint32())
	defer dropSchema(env.cfg.To, schema)

	// The frames target compares what is sent with the JSON payloads.
	var payload int
	for ev, err := range store.ReadAll(1) {
		if err != nil {
			return nil, err
		}
		payload += len(ev.Data)
	}
	var m replicate.Metrics
	s := &sample{}
	start := time.Now()
	err = replicate.Run(ctx, store, replicate.Options{
		URL:     env.cfg.To,
		Source:  "bench",
		Schema:  schema,
		Layout:  layout,
		Once:    true,
		Metrics: &m,
	})
	elapsed := time.Since(start)
	s.record(elapsed, total, 0, err)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	r := summarize(workload, "", elapsed, s)
	sent := float64(m.BytesSent.Load()) / float64(total)
	note := fmt.Sprintf("%d events in one pass of replicate.Run (Once); %.1f bytes sent per event (protocol included); the JSON payloads alone are %.1f bytes per event, %.2f× that",
		total, sent, float64(payload)/float64(total), float64(payload)/float64(total)/sent)
	if r.Note != "" {
		note += "; " + r.Note
	}
	r.Note = note
	return []Result{r}, nil
}

// dropSchema removes what a replicate workload created, whatever happened
// to the run's context.
func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
}
