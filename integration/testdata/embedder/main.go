// Command embedder is an application that embeds a store and serves it to
// other processes with package server, as the integration tests need: it
// opens -db, serves its socket, prints "ready" and runs until SIGTERM or
// SIGINT, appending an event of its own every -append-every meanwhile.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/server"
)

func main() {
	db := flag.String("db", "app.db", "database file")
	every := flag.Duration("append-every", 0, "append an event of the application's own this often (0: never)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	store, err := local.Open(*db, local.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	// The application's executor, shared with the server so both use one
	// cache.
	ex := executor.New(store, executor.Options{})
	srv, err := server.Listen(store, server.Options{Executor: ex})
	if err != nil {
		log.Fatal(err)
	}
	if *every > 0 {
		go func() {
			t := time.NewTicker(*every)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					store.Append(ctx, []format.EventData{{Stream: "app-ticks", Type: "Ticked", Data: fmt.Appendf(nil, `{"n":%d}`, n)}})
				}
			}
		}()
	}
	fmt.Println("ready")
	if err := srv.Serve(ctx); err != nil {
		log.Fatal(err)
	}
}
