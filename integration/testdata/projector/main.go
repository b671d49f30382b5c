// Command projector is a helper for the integration projection kill test:
// it opens a bank log, opens and funds its accounts (idempotently, so a
// restart adds nothing), runs the commands.Balances projection and 64
// clients of random transfers in one process, and prints "ready" once
// everything runs. It runs until killed, or with -settle it stops the
// clients after a while, waits for the projection to reach the head and
// exits 0. It is built by the test with go build; testdata keeps it out of
// ./... .
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

func main() {
	db := flag.String("db", "", "log file")
	clients := flag.Int("clients", 64, "concurrent transfer clients")
	accounts := flag.Int("accounts", 20, "accounts")
	settle := flag.Duration("settle", 0, "run the clients this long, then wait for the projection to catch up and exit (0: run until killed)")
	flag.Parse()
	fail := func(code int, what string, err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(code)
	}

	// A killed predecessor's file lock goes with its process; wait a little
	// anyway in case the kernel has not released it yet.
	store, err := local.Open(*db, local.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fail(1, "open", err)
	}
	ctx := context.Background()
	reg := commands.Builtin()
	ex := executor.New(store, executor.Options{MaxRetries: 1_000_000})
	for i := range *accounts {
		id := fmt.Sprintf("a%d", i)
		if _, err := reg.Run(ctx, ex, "bank.open", fmt.Appendf(nil, `{"account":%q,"owner":"O"}`, id), executor.Idempotent("open-"+id)); err != nil {
			fail(2, "open account", err)
		}
		if _, err := reg.Run(ctx, ex, "bank.deposit", fmt.Appendf(nil, `{"account":%q,"amount":100000}`, id), executor.Idempotent("fund-"+id)); err != nil {
			fail(2, "fund account", err)
		}
	}

	pctx, stopProjection := context.WithCancel(ctx)
	projected := make(chan error, 1)
	go func() { projected <- projection.Run(pctx, store, commands.Balances{}, commands.BalancesOptions()) }()

	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			for cctx.Err() == nil {
				from := rand.IntN(*accounts)
				to := (from + 1 + rand.IntN(*accounts-1)) % *accounts
				args := fmt.Appendf(nil, `{"from":"a%d","to":"a%d","amount":%d}`, from, to, 1+rand.IntN(500))
				if _, err := reg.Run(ctx, ex, "bank.transfer", args); err != nil && !errors.Is(err, commands.ErrInsufficientFunds) {
					fail(4, "transfer", err)
				}
			}
		})
	}
	fmt.Println("ready")

	if *settle == 0 {
		err := <-projected // only an error ends it before the kill
		fail(5, "projection", err)
	}
	select {
	case err := <-projected:
		fail(5, "projection", err)
	case <-time.After(*settle):
	}
	stopClients()
	wg.Wait()
	head := store.Head()
	for {
		pos, err := projection.Position(store, commands.BalancesName)
		if err != nil {
			fail(6, "position", err)
		}
		if pos == head {
			break
		}
		select {
		case err := <-projected:
			fail(5, "projection", err)
		case <-time.After(time.Millisecond):
		}
	}
	stopProjection()
	if err := <-projected; err != nil {
		fail(5, "projection", err)
	}
	if err := store.Close(); err != nil {
		fail(7, "close", err)
	}
	fmt.Println("settled", head)
}
