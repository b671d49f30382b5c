package commands_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// longAccounts opens accounts a0..a<n-1> with history deposits each,
// appended straight to the store (quick), then runs one bank.deposit on
// each through ex, as a workload that has been running would have.
func longAccounts(t testing.TB, store *local.Store, ex *executor.Executor, reg *commands.Registry, n, history int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("a%d", i)
		evs := []format.EventData{{Stream: commands.AccountStream(id), Type: commands.EventAccountOpened,
			Data: fmt.Appendf(nil, `{"account":%q,"owner":"O"}`, id)}}
		for j := range history {
			evs = append(evs, format.EventData{Stream: commands.AccountStream(id), Type: commands.EventDeposited,
				Data: fmt.Appendf(nil, `{"amount":10,"balance":%d}`, 10*(j+1))})
		}
		if _, err := store.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Run(ctx, ex, "bank.deposit", fmt.Appendf(nil, `{"account":%q,"amount":1}`, id)); err != nil {
			t.Fatal(err)
		}
	}
}

// transferAllocs is the allocations of one bank.transfer between two
// accounts of history events each that were never transferred between
// before, averaged over a few such pairs; the event cache is off, so
// every event a command folds is read from the store (and allocated).
func transferAllocs(t *testing.T, history int) float64 {
	store, err := local.Open(filepath.Join(t.TempDir(), "test.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ex := executor.New(store, executor.Options{CacheEvents: -1})
	reg := commands.Builtin()
	const runs = 4
	longAccounts(t, store, ex, reg, 2*(runs+1), history)
	spec, _ := reg.Lookup("bank.transfer")
	i := 0
	return testing.AllocsPerRun(runs, func() {
		args := fmt.Appendf(nil, `{"from":"a%d","to":"a%d","amount":5}`, 2*i, 2*i+1)
		i++
		if _, err := spec.Run(context.Background(), ex, args); err != nil {
			t.Fatal(err)
		}
	})
}

// A transfer over a pair of accounts that never met reads and folds only
// what is new in each account since the last command on it, not the
// accounts' history: the bank commands keep one state per account,
// shared by deposit, withdraw and transfer and by every pair. Measured
// with allocations, which reading an event from the store always costs:
// 20 times the history costs (almost) no more. Keyed per pair, as the
// bank once was, each such transfer read both histories whole (tens of
// thousands of allocations at 2,000 events per account).
func TestTransferFreshPairReadsOnlyNewEvents(t *testing.T) {
	short, long := transferAllocs(t, 100), transferAllocs(t, 2000)
	t.Logf("allocations per transfer: %.0f with 100 events per account, %.0f with 2,000", short, long)
	// Reading 2 × 1,900 more events would cost more than 3,800.
	if long-short > 1000 {
		t.Errorf("a transfer over accounts of 2,000 events allocates %.0f, over 100 events %.0f: it reads their history", long, short)
	}
}

// Deposits, withdrawals and transfers share each account's kept state,
// whichever command and pair folded it: the same commands decide exactly
// as when every command folds from zero (no kept states), event for event
// and refusal for refusal.
func TestKeptAccountStatesDecideAsFoldFromZero(t *testing.T) {
	ctx := context.Background()
	reg := commands.Builtin()
	type run struct {
		store *local.Store
		ex    *executor.Executor
	}
	var runs []run
	for _, states := range []int{0, -1} { // kept (the default), none
		store, err := local.Open(filepath.Join(t.TempDir(), "test.db"), local.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		runs = append(runs, run{store, executor.New(store, executor.Options{CacheStates: states})})
	}
	const accounts = 5
	rng := rand.New(rand.NewPCG(1, 2))
	var calls []call
	for i := range accounts {
		calls = append(calls, call{"bank.open", fmt.Sprintf(`{"account":"a%d","owner":"O"}`, i)})
	}
	for range 400 {
		a, b, n := rng.IntN(accounts), rng.IntN(accounts), 1+rng.IntN(300)
		switch rng.IntN(3) {
		case 0:
			calls = append(calls, call{"bank.deposit", fmt.Sprintf(`{"account":"a%d","amount":%d}`, a, n)})
		case 1:
			calls = append(calls, call{"bank.withdraw", fmt.Sprintf(`{"account":"a%d","amount":%d}`, a, n)})
		default:
			if a == b {
				b = (b + 1) % accounts
			}
			calls = append(calls, call{"bank.transfer", fmt.Sprintf(`{"from":"a%d","to":"a%d","amount":%d}`, a, b, n)})
		}
	}
	refused := 0
	for _, c := range calls {
		var outcome [2]string
		for i, r := range runs {
			res, err := reg.Run(ctx, r.ex, c.name, json.RawMessage(c.args))
			outcome[i] = fmt.Sprint(res.Position, err)
		}
		if outcome[0] != outcome[1] {
			t.Fatalf("%s %s: with kept states %s, folded from zero %s", c.name, c.args, outcome[0], outcome[1])
		}
		if strings.Contains(outcome[0], "insufficient") {
			refused++
		}
	}
	t.Logf("%d of %d commands refused", refused, len(calls))
	if refused == 0 || refused == len(calls)-accounts {
		t.Fatalf("%d of %d commands refused: the sequence does not exercise both outcomes", refused, len(calls))
	}
	for i := range accounts {
		var logs [2][]string
		for j, r := range runs {
			for ev, err := range r.store.ReadStream(commands.AccountStream(fmt.Sprintf("a%d", i)), 1) {
				if err != nil {
					t.Fatal(err)
				}
				logs[j] = append(logs[j], ev.Type+" "+string(ev.Data))
			}
		}
		if !slices.Equal(logs[0], logs[1]) {
			t.Errorf("account a%d: with kept states %q, folded from zero %q", i, logs[0], logs[1])
		}
	}
}

// BenchmarkTransferLongAccounts runs transfers between random pairs of 200
// accounts with a long history each, so that a pair rarely repeats (as in
// the soak): the cost per transfer must not grow with the history. No
// fsync; default executor options.
//
//	go test -run '^$' -bench TransferLongAccounts ./commands/
func BenchmarkTransferLongAccounts(b *testing.B) {
	for _, history := range []int{100, 1000} {
		b.Run(fmt.Sprintf("events=%d", history), func(b *testing.B) {
			store, err := local.Open(filepath.Join(b.TempDir(), "test.db"), local.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			ex := executor.New(store, executor.Options{})
			reg := commands.Builtin()
			const accounts = 200
			longAccounts(b, store, ex, reg, accounts, history)
			spec, _ := reg.Lookup("bank.transfer")
			rng := rand.New(rand.NewPCG(1, 2))
			ctx := context.Background()
			for b.Loop() {
				from := rng.IntN(accounts)
				to := (from + 1 + rng.IntN(accounts-1)) % accounts
				args := fmt.Appendf(nil, `{"from":"a%d","to":"a%d","amount":1}`, from, to)
				if _, err := spec.Run(ctx, ex, args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
