package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/internal/seedcmd"
	"github.com/evstore/evstore/local"
)

// seedSingle runs sequential commands that each read one stream and
// append one event to it. The first and last thousand show whether a
// command's cost grows with its stream.
func seedSingle(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("seed-single")
	if err != nil {
		return nil, err
	}
	defer done()
	ex := executor.New(store, executor.Options{})
	n := env.scaled(10_000, 2)
	window := min(1000, n/2)
	s := &sample{lat: make([]time.Duration, 0, n)}
	ends := make([]time.Time, n)
	cmd := seedcmd.Kept{Cmd: seedcmd.Cmd{"seed-single"}}
	start := time.Now()
	for i := range n {
		t := time.Now()
		res, err := executor.Execute(ctx, ex, executor.Command[seedcmd.State](cmd))
		ends[i] = time.Now()
		s.record(ends[i].Sub(t), len(res.Events), res.Retries, err)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
	r := summarize("seed-single", "", time.Since(start), s)
	first := float64(window) / ends[window-1].Sub(start).Seconds()
	last := float64(window) / ends[n-1].Sub(ends[n-window-1]).Seconds()
	r.Extra = map[string]float64{"first_window_ops_per_sec": first, "last_window_ops_per_sec": last, "window": float64(window)}
	r.Note = fmt.Sprintf("first %d: %.0f ops/s, last %d: %.0f ops/s (last/first %.2f)", window, first, window, last, last/first)
	return []Result{r}, nil
}

// seedMulti runs sequential commands that each read and write the same
// two streams.
func seedMulti(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("seed-multi")
	if err != nil {
		return nil, err
	}
	defer done()
	ex := executor.New(store, executor.Options{})
	n := env.scaled(5_000, 2)
	s := &sample{lat: make([]time.Duration, 0, n)}
	cmd := seedcmd.Kept{Cmd: seedcmd.Cmd{"seed-multi-a", "seed-multi-b"}}
	start := time.Now()
	for range n {
		t := time.Now()
		res, err := executor.Execute(ctx, ex, executor.Command[seedcmd.State](cmd))
		s.record(time.Since(t), len(res.Events), res.Retries, err)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
	return []Result{summarize("seed-multi", "", time.Since(start), s)}, nil
}

// seedBatch appends batches of events, each batch to a stream that must
// not exist yet: the bulk-import path, with no command and no fold.
func seedBatch(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("seed-batch")
	if err != nil {
		return nil, err
	}
	defer done()
	batches, size := env.scaled(100, 2), 200
	s := &sample{lat: make([]time.Duration, 0, batches)}
	events := make([]format.EventData, size)
	start := time.Now()
	for b := range batches {
		stream := "batch-" + strconv.Itoa(b)
		for i := range events {
			events[i] = format.EventData{Stream: stream, Type: "Seeded", Data: strconv.AppendInt([]byte(`{"n":`), int64(i), 10)}
			events[i].Data = append(events[i].Data, '}')
		}
		t := time.Now()
		_, err := store.Append(ctx, events, local.Expect{Stream: stream})
		s.record(time.Since(t), size, 0, err)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
	return []Result{summarize("seed-batch", "", time.Since(start), s)}, nil
}

// openingBalance is every bench account's opening deposit, in cents:
// far more than the transfers of one run can move, so none fails for lack
// of funds.
const openingBalance = 1_000_000_000

func accountID(i int) string { return "acct-" + strconv.Itoa(i) }

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		next  = make(chan int)
		wg    sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// setupAccounts opens the accounts and funds them through the real bank
// commands, so the baseline can be loaded with exactly the same events.
func setupAccounts(ctx context.Context, ex *executor.Executor, reg *commands.Registry, accounts, workers int) error {
	return parallel(accounts, workers, func(i int) error {
		id := accountID(i)
		if _, err := reg.Run(ctx, ex, "bank.open", fmt.Appendf(nil, `{"account":%q,"owner":"Owner %d"}`, id, i)); err != nil {
			return err
		}
		_, err := reg.Run(ctx, ex, "bank.deposit", fmt.Appendf(nil, `{"account":%q,"amount":%d}`, id, openingBalance))
		return err
	})
}

// bankOp builds the arguments of one deposit or transfer on random accounts.
func bankOp(dst []byte, workload string, accounts int) []byte {
	amount := 1 + rand.IntN(100)
	if workload == "deposit" {
		dst = append(dst, `{"account":"`...)
		dst = append(dst, accountID(rand.IntN(accounts))...)
		dst = append(dst, `","amount":`...)
		return append(strconv.AppendInt(dst, int64(amount), 10), '}')
	}
	from := rand.IntN(accounts)
	to := rand.IntN(accounts - 1)
	if to >= from {
		to++
	}
	dst = append(dst, `{"from":"`...)
	dst = append(dst, accountID(from)...)
	dst = append(dst, `","to":"`...)
	dst = append(dst, accountID(to)...)
	dst = append(dst, `","amount":`...)
	return append(strconv.AppendInt(dst, int64(amount), 10), '}')
}

// bankWorkload runs bank.deposit or bank.transfer from many clients on random
// accounts for the configured duration.
func bankWorkload(ctx context.Context, env *workloadEnv, workload string) ([]Result, error) {
	_, reg, ex, accounts, done, err := openBank(ctx, env, workload)
	if err != nil {
		return nil, err
	}
	defer done()
	name := "bank." + workload
	r := runClients(ctx, env.cfg.Clients, env.cfg.Duration, func(s *sample) {
		var args []byte
		for {
			args = bankOp(args[:0], workload, accounts)
			t := time.Now()
			res, err := reg.Run(ctx, ex, name, args)
			if !s.timed(t, len(res.Events), res.Retries, err) {
				return
			}
		}
	})
	r.Workload = workload
	return []Result{r}, nil
}

// openBank opens a fresh store for a bank workload, with the built-in
// registry, an executor at default options and its accounts opened and
// funded; done closes and deletes the store.
func openBank(ctx context.Context, env *workloadEnv, name string) (store *local.Store, reg *commands.Registry, ex *executor.Executor, accounts int, done func(), err error) {
	store, done, err = env.openStore(name)
	if err != nil {
		return nil, nil, nil, 0, nil, err
	}
	reg = commands.Builtin()
	ex = executor.New(store, executor.Options{})
	accounts = env.scaled(10_000, 1000)
	if err := setupAccounts(ctx, ex, reg, accounts, env.cfg.Clients); err != nil {
		done()
		return nil, nil, nil, 0, nil, fmt.Errorf("open accounts: %w", err)
	}
	return store, reg, ex, accounts, done, nil
}

// runClients runs client on n goroutines until d has passed and summarizes
// what they recorded. A client calls s.timed after each operation and stops
// when it returns false.
func runClients(ctx context.Context, n int, d time.Duration, client func(s *sample)) Result {
	samples := make([]*sample, n)
	var wg sync.WaitGroup
	start, cpu := time.Now(), cpuTime()
	deadline := start.Add(d)
	for i := range samples {
		samples[i] = &sample{deadline: deadline, ctx: ctx}
		wg.Go(func() { client(samples[i]) })
	}
	wg.Wait()
	r := summarize("", "", time.Since(start), samples...)
	// CPU per operation says whether a workload is bound by the CPU or by
	// waiting (fsync, the machine's other jobs): compare it with 1/ops·CPUs.
	if used := cpuTime() - cpu; used > 0 && r.Ops > 0 {
		r.Extra = map[string]float64{"cpu_ms_per_op": float64(used) / float64(time.Millisecond) / float64(r.Ops)}
	}
	return r
}

// timed records an operation that started at t, unless the caller's
// context was cancelled under it, and reports whether the client should go
// on. Operations still running at the deadline finish and count: cutting
// them off would turn them into errors.
func (s *sample) timed(t time.Time, events, retries int, err error) bool {
	now := time.Now()
	if err != nil && s.ctx.Err() != nil {
		return false
	}
	s.record(now.Sub(t), events, retries, err)
	return now.Before(s.deadline)
}

// contention has many clients increment one counter. Every increment
// reads the counter, so nearly every commit conflicts; the count must still
// come out exact.
func contention(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("contention")
	if err != nil {
		return nil, err
	}
	defer done()
	reg := commands.Builtin()
	// Default options: the executor orders its own commands on the
	// counter, so none conflicts and none is retried.
	ex := executor.New(store, executor.Options{})
	clients, each := 100, env.scaled(100, 1)
	samples := make([]*sample, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range samples {
		samples[i] = &sample{}
		wg.Go(func() {
			for range each {
				t := time.Now()
				res, err := reg.Run(ctx, ex, "counter.increment", json.RawMessage(`{"counter":"bench"}`))
				samples[i].record(time.Since(t), len(res.Events), res.Retries, err)
			}
		})
	}
	wg.Wait()
	r := summarize("contention", "", time.Since(start), samples...)
	got, err := store.Version(commands.CounterStream("bench"))
	if err != nil {
		return nil, err
	}
	want := uint64(clients * each)
	r.Extra = map[string]float64{"final_count": float64(got), "expected": float64(want)}
	if got != want {
		return []Result{r}, fmt.Errorf("counter ended at %d, want exactly %d", got, want)
	}
	note := fmt.Sprintf("%d clients × %d increments: counter exactly %d", clients, each, got)
	if r.Note != "" {
		note += "; " + r.Note
	}
	r.Note = note
	return []Result{r}, nil
}

// readWorkload reads one 1,000-event stream repeatedly, then scans a log of a
// million events.
func readWorkload(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("read")
	if err != nil {
		return nil, err
	}
	defer done()
	streamLen := env.scaled(1000, 1)
	total := max(env.scaled(1_000_000, 1), streamLen)
	if err := fillLog(ctx, store, total, streamLen); err != nil {
		return nil, err
	}

	reads := env.scaled(2000, 5)
	s := &sample{lat: make([]time.Duration, 0, reads)}
	start := time.Now()
	for range reads {
		t := time.Now()
		n := 0
		var err error
		for _, e := range store.ReadStream("read-stream", 1) {
			if e != nil {
				err = e
				break
			}
			n++
		}
		if err == nil && n != streamLen {
			err = fmt.Errorf("read %d events of the stream, want %d", n, streamLen)
		}
		s.record(time.Since(t), n, 0, err)
	}
	stream := summarize("read-stream", "", time.Since(start), s)
	stream.Note = fmt.Sprintf("whole %d-event stream per op", streamLen)

	scan := &sample{}
	start = time.Now()
	n := 0
	for _, err := range store.ReadAll(1) {
		if err != nil {
			scan.record(time.Since(start), n, 0, err)
			break
		}
		n++
	}
	if scan.errors == 0 {
		scan.record(time.Since(start), n, 0, nil)
	}
	all := summarize("read-scan", "", time.Since(start), scan)
	all.Note = fmt.Sprintf("whole log of %d events in one pass", n)
	if n != total && scan.errors == 0 {
		return nil, fmt.Errorf("scanned %d events, want %d", n, total)
	}
	return []Result{stream, all}, nil
}

// fillLog appends total events in large batches: streamLen to "read-stream"
// spread through the log (so a stream read touches pages all over it, as a
// real one would), the rest to many small streams.
func fillLog(ctx context.Context, store *local.Store, total, streamLen int) error {
	const batch = 2000
	every := max(total/streamLen, 1)
	events := make([]format.EventData, 0, batch)
	written, inStream := 0, 0
	for written < total {
		events = events[:0]
		for len(events) < batch && written+len(events) < total {
			i := written + len(events)
			stream := "fill-" + strconv.Itoa(i/100)
			if i%every == 0 && inStream < streamLen || total-i <= streamLen-inStream {
				stream = "read-stream"
				inStream++
			}
			events = append(events, format.EventData{Stream: stream, Type: "Filled", Data: payloadOf(i)})
		}
		if _, err := store.Append(ctx, events); err != nil {
			return fmt.Errorf("fill the log: %w", err)
		}
		written += len(events)
	}
	if inStream != streamLen {
		return errors.New("fill the log: miscounted the read stream")
	}
	return nil
}

// payloadOf is a small JSON object, about the size of a bank event.
func payloadOf(i int) []byte {
	return fmt.Appendf(nil, `{"amount":%d,"balance":%d,"note":"bench"}`, i%1000+1, i)
}
