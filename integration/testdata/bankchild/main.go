// Command bankchild is the workload of the kill loop, the power-loss and the
// soak suites: many clients run bank.transfer with idempotency keys against
// one durable store until the process is killed (or -for ends). Before a
// transfer it prints "start KEY FROM TO AMOUNT", after it "ack KEY POSITION"
// (the commit is durable by then), or "ack KEY POSITION MICROSECONDS" with -latency or "refused KEY" (insufficient funds:
// nothing written). It is built by the tests with go build; testdata keeps
// it out of ./... . -for and -cpuprofile profile a fixed run by hand.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/local"
)

func main() {
	db := flag.String("db", "", "database file")
	run := flag.String("run", "r", "prefix of this run's idempotency keys")
	clients := flag.Int("clients", 32, "concurrent clients")
	accounts := flag.Int("accounts", 20, "accounts a00.. to transfer among (opened by the test)")
	latency := flag.Bool("latency", false, "add each transfer's latency to its ack line")
	noSync := flag.Bool("nosync", false, "skip fsync (a control: the power-loss suite must then lose acknowledged commands)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file (with -for)")
	runFor := flag.Duration("for", 0, "stop after this long, exit 0 (0: run until killed)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		pprof.StartCPUProfile(f)
	}
	if *runFor > 0 {
		time.AfterFunc(*runFor, func() {
			pprof.StopCPUProfile()
			os.Exit(0)
		})
	}

	store, err := local.Open(*db, local.Options{NoSync: *noSync, LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	ex := executor.New(store, executor.Options{MaxRetries: 10000})
	spec, _ := commands.Builtin().Lookup("bank.transfer")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, v ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", v...)
		out.Flush() // one write per line: a kill never tears a line
		mu.Unlock()
	}
	say("ready")
	var wg sync.WaitGroup
	for c := range *clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				from := rand.IntN(*accounts)
				to := (from + 1 + rand.IntN(*accounts-1)) % *accounts
				amount := 1 + rand.IntN(10)
				key := fmt.Sprintf("%s-%d-%d", *run, c, i)
				say("start %s a%02d a%02d %d", key, from, to, amount)
				args := fmt.Appendf(nil, `{"from":"a%02d","to":"a%02d","amount":%d}`, from, to, amount)
				began := time.Now()
				res, err := spec.Run(context.Background(), ex, args, executor.Idempotent(key))
				switch {
				case err == nil && *latency:
					say("ack %s %d %d", key, res.Position, time.Since(began).Microseconds())
				case err == nil:
					say("ack %s %d", key, res.Position)
				case errors.Is(err, commands.ErrInsufficientFunds):
					say("refused %s", key)
				default:
					fmt.Fprintln(os.Stderr, "transfer:", err)
					os.Exit(4)
				}
			}
		})
	}
	wg.Wait()
}
