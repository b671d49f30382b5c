// Command replicator is a helper for the integration kill test: it opens a
// log, optionally keeps appending events to it from a goroutine (the log's
// file lock allows one process, so new events must come from inside), and
// runs replicate.Run until it is killed. It is built by the test with
// go build; testdata keeps it out of ./... .
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
)

func main() {
	db := flag.String("db", "", "log file")
	url := flag.String("url", "", "PostgreSQL URL")
	schema := flag.String("schema", "evstore", "schema")
	source := flag.String("source", "victim", "source name")
	layout := flag.String("layout", "rows", "rows or frames")
	appendEvery := flag.Duration("append-every", 0, "append a batch of events this often (0: never)")
	appendBatch := flag.Int("append-batch", 25, "events per append")
	lockWait := flag.Duration("lock-wait", 10*time.Second, "Options.LockWait")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// The file lock of a killed earlier run goes with its process; wait a little
	// anyway in case the kernel has not released it yet.
	store, err := local.Open(*db, local.Options{NoSync: true, LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	defer store.Close()

	if *appendEvery > 0 {
		go func() {
			t := time.NewTicker(*appendEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				evs := make([]format.EventData, *appendBatch)
				for i := range evs {
					n := store.Head() + uint64(i)
					evs[i] = format.EventData{
						Stream:   fmt.Sprintf("k-%d", n%37),
						Type:     "Ticked",
						Data:     fmt.Appendf(nil, `{"n":%d,"pid":%d}`, n, os.Getpid()),
						Metadata: map[string]string{"pid": fmt.Sprint(os.Getpid())},
					}
				}
				if _, err := store.Append(ctx, evs); err != nil && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(1)
				}
			}
		}()
	}

	err = replicate.Run(ctx, store, replicate.Options{
		URL: *url, Schema: *schema, Source: *source, Layout: replicate.Layout(*layout),
		BatchEvents:   200,
		FlushInterval: 10 * time.Millisecond,
		Backoff:       replicate.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		LockWait:      *lockWait,
		Logger:        log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "replicate:", err)
		os.Exit(1)
	}
}
