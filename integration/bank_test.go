package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/local"
)

// TestConcurrentBankTransfers: 64
// goroutines move money at random among 50 funded accounts through the real
// bank.transfer command on a durable store. Money is neither made nor lost,
// no balance goes negative, versions and positions have no gaps, and the
// run really did contend. One executor orders its own commands and never
// conflicts with itself, so the goroutines share two executors, as two
// embedders of one store would: each sees the other's commits only as
// conflicts, and some commands must have been retried.
func TestConcurrentBankTransfers(t *testing.T) {
	ctx := context.Background()
	store, err := local.Open(filepath.Join(t.TempDir(), "bank.db"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	executors := []*executor.Executor{
		executor.New(store, executor.Options{MaxRetries: 1000}),
		executor.New(store, executor.Options{MaxRetries: 1000}),
	}
	reg := commands.Builtin()
	runOn := func(ex *executor.Executor, name string, args any) (executor.Result, error) {
		spec, ok := reg.Lookup(name)
		if !ok {
			t.Fatalf("no command %s", name)
		}
		raw, _ := json.Marshal(args)
		return spec.Run(ctx, ex, raw)
	}
	run := func(name string, args any) (executor.Result, error) { return runOn(executors[0], name, args) }

	const accounts, funding = 50, 10_000
	for i := range accounts {
		id := fmt.Sprintf("a%02d", i)
		if _, err := run("bank.open", map[string]any{"account": id, "owner": "owner " + id}); err != nil {
			t.Fatal(err)
		}
		if _, err := run("bank.deposit", map[string]any{"account": id, "amount": funding}); err != nil {
			t.Fatal(err)
		}
	}

	var done, refused, retries atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for i := range 64 {
		ex := executors[i%2]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				from, to := rand.IntN(accounts), rand.IntN(accounts)
				if from == to {
					continue
				}
				res, err := runOn(ex, "bank.transfer", map[string]any{
					"from": fmt.Sprintf("a%02d", from), "to": fmt.Sprintf("a%02d", to), "amount": rand.IntN(3000) + 1,
				})
				switch {
				case err == nil:
					done.Add(1)
					retries.Add(int64(res.Retries))
				case errors.Is(err, commands.ErrInsufficientFunds):
					refused.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	var total int64
	for i := range accounts {
		bal, open, err := commands.Balance(ctx, store, fmt.Sprintf("a%02d", i))
		if err != nil || !open {
			t.Fatalf("account %d: open=%v err=%v", i, open, err)
		}
		if bal < 0 {
			t.Fatalf("account %d is negative: %d", i, bal)
		}
		total += bal
	}
	if total != accounts*funding {
		t.Fatalf("total balance %d, want %d", total, accounts*funding)
	}
	versions := map[string]uint64{}
	var pos uint64
	for ev, err := range store.ReadAll(1) {
		if err != nil {
			t.Fatal(err)
		}
		if pos++; ev.Position != pos {
			t.Fatalf("position %d where %d expected", ev.Position, pos)
		}
		if versions[ev.Stream]++; ev.Version != versions[ev.Stream] {
			t.Fatalf("%s: version %d where %d expected", ev.Stream, ev.Version, versions[ev.Stream])
		}
	}
	if pos != store.Head() {
		t.Fatalf("read %d events, head is %d", pos, store.Head())
	}
	if retries.Load() == 0 {
		t.Fatal("no transfer was retried: the test did not exercise conflicts")
	}
	if done.Load() == 0 {
		t.Fatal("no transfer succeeded")
	}
	t.Logf("%d transfers, %d refused for funds, %d retries", done.Load(), refused.Load(), retries.Load())
}
