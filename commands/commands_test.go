package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

func open(t *testing.T) (*local.Store, *executor.Executor) {
	t.Helper()
	store, err := local.Open(filepath.Join(t.TempDir(), "test.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, executor.New(store, executor.Options{})
}

type call struct{ name, args string }

func run(t *testing.T, reg *commands.Registry, ex *executor.Executor, calls ...call) {
	t.Helper()
	for _, c := range calls {
		if _, err := reg.Run(context.Background(), ex, c.name, json.RawMessage(c.args)); err != nil {
			t.Fatalf("setup %s %s: %v", c.name, c.args, err)
		}
	}
}

var bankSetup = []call{
	{"bank.open", `{"account":"alice","owner":"Alice"}`},
	{"bank.open", `{"account":"bob","owner":"Bob"}`},
	{"bank.deposit", `{"account":"alice","amount":1000}`},
}

type wantEvent struct{ stream, typ, data string }

func TestCommands(t *testing.T) {
	maxDeposit := fmt.Sprintf(`{"account":"bob","amount":%d}`, int64(math.MaxInt64))
	tests := []struct {
		name    string
		setup   []call
		cmd     call
		want    []wantEvent // on success
		wantErr error       // sentinel; nil means success
		wantMsg string      // substring of the error
	}{
		// append
		{name: "append new stream", cmd: call{"append", `{"stream":"s-1","type":"Noted","data":{"a": [1, 2]}}`},
			want: []wantEvent{{"s-1", "Noted", `{"a":[1,2]}`}}},
		{name: "append string data", cmd: call{"append", `{"stream":"s-1","type":"Noted","data":"hi"}`},
			want: []wantEvent{{"s-1", "Noted", `"hi"`}}},
		{name: "append null data", cmd: call{"append", `{"stream":"s-1","type":"Noted","data":null}`},
			want: []wantEvent{{"s-1", "Noted", `null`}}},
		{name: "append expect 0 on new stream", cmd: call{"append", `{"stream":"s-1","type":"T","data":1,"expect":0}`},
			want: []wantEvent{{"s-1", "T", `1`}}},
		{name: "append expect current version",
			setup: []call{{"append", `{"stream":"s-1","type":"T","data":1}`}, {"append", `{"stream":"s-1","type":"T","data":2}`}},
			cmd:   call{"append", `{"stream":"s-1","type":"T","data":3,"expect":2}`},
			want:  []wantEvent{{"s-1", "T", `3`}}},
		{name: "append expect 0 on existing stream",
			setup:   []call{{"append", `{"stream":"s-1","type":"T","data":1}`}},
			cmd:     call{"append", `{"stream":"s-1","type":"T","data":2,"expect":0}`},
			wantErr: local.ErrConflict, wantMsg: `"s-1"`},
		{name: "append expect stale version",
			setup:   []call{{"append", `{"stream":"s-1","type":"T","data":1}`}, {"append", `{"stream":"s-1","type":"T","data":2}`}},
			cmd:     call{"append", `{"stream":"s-1","type":"T","data":3,"expect":1}`},
			wantErr: local.ErrConflict, wantMsg: "expected version 1, found 2"},
		{name: "append expect future version", cmd: call{"append", `{"stream":"s-1","type":"T","data":3,"expect":5}`},
			wantErr: local.ErrConflict},

		// bank.open
		{name: "open", cmd: call{"bank.open", `{"account":"alice","owner":"Alice \"A\" Liddell"}`},
			want: []wantEvent{{"account-alice", commands.EventAccountOpened, `{"account":"alice","owner":"Alice \"A\" Liddell"}`}}},
		{name: "open twice", setup: bankSetup, cmd: call{"bank.open", `{"account":"alice","owner":"Other"}`},
			wantErr: commands.ErrAccountExists, wantMsg: `account "alice" is already open`},

		// bank.deposit
		{name: "deposit", setup: bankSetup, cmd: call{"bank.deposit", `{"account":"alice","amount":250}`},
			want: []wantEvent{{"account-alice", commands.EventDeposited, `{"amount":250,"balance":1250}`}}},
		{name: "deposit unknown account", setup: bankSetup, cmd: call{"bank.deposit", `{"account":"carol","amount":1}`},
			wantErr: commands.ErrUnknownAccount, wantMsg: `unknown account "carol"`},
		{name: "deposit zero", setup: bankSetup, cmd: call{"bank.deposit", `{"account":"alice","amount":0}`},
			wantErr: commands.ErrInvalidAmount, wantMsg: "got 0"},
		{name: "deposit negative", setup: bankSetup, cmd: call{"bank.deposit", `{"account":"alice","amount":-5}`},
			wantErr: commands.ErrInvalidAmount, wantMsg: "got -5"},
		{name: "deposit overflow", setup: append(slices.Clone(bankSetup), call{"bank.deposit", maxDeposit}),
			cmd:     call{"bank.deposit", `{"account":"bob","amount":1}`},
			wantErr: commands.ErrOverflow, wantMsg: `account "bob" would overflow`},
		{name: "deposit max into empty account", setup: bankSetup, cmd: call{"bank.deposit", maxDeposit},
			want: []wantEvent{{"account-bob", commands.EventDeposited, fmt.Sprintf(`{"amount":%d,"balance":%[1]d}`, int64(math.MaxInt64))}}},

		// bank.withdraw
		{name: "withdraw", setup: bankSetup, cmd: call{"bank.withdraw", `{"account":"alice","amount":1000}`},
			want: []wantEvent{{"account-alice", commands.EventWithdrawn, `{"amount":1000,"balance":0}`}}},
		{name: "withdraw too much", setup: bankSetup, cmd: call{"bank.withdraw", `{"account":"alice","amount":1001}`},
			wantErr: commands.ErrInsufficientFunds, wantMsg: `balance is 1000 cents, the withdrawal of 1001 cents is 1 cents short`},
		{name: "withdraw unknown account", setup: bankSetup, cmd: call{"bank.withdraw", `{"account":"carol","amount":1}`},
			wantErr: commands.ErrUnknownAccount},
		{name: "withdraw negative", setup: bankSetup, cmd: call{"bank.withdraw", `{"account":"alice","amount":-1}`},
			wantErr: commands.ErrInvalidAmount},

		// bank.transfer
		{name: "transfer", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"alice","to":"bob","amount":400}`},
			want: []wantEvent{
				{"account-alice", commands.EventTransferSent, `{"amount":400,"balance":600,"to":"bob"}`},
				{"account-bob", commands.EventTransferReceived, `{"amount":400,"balance":400,"from":"alice"}`},
			}},
		{name: "transfer everything", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"alice","to":"bob","amount":1000}`},
			want: []wantEvent{
				{"account-alice", commands.EventTransferSent, `{"amount":1000,"balance":0,"to":"bob"}`},
				{"account-bob", commands.EventTransferReceived, `{"amount":1000,"balance":1000,"from":"alice"}`},
			}},
		{name: "transfer insufficient funds", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"bob","to":"alice","amount":999999}`},
			wantErr: commands.ErrInsufficientFunds, wantMsg: `insufficient funds in account "bob": balance is 0 cents, the transfer of 999999 cents`},
		{name: "transfer from unknown", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"carol","to":"bob","amount":1}`},
			wantErr: commands.ErrUnknownAccount, wantMsg: `"carol"`},
		{name: "transfer to unknown", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"alice","to":"carol","amount":1}`},
			wantErr: commands.ErrUnknownAccount, wantMsg: `"carol"`},
		{name: "transfer to self", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"alice","to":"alice","amount":1}`},
			wantErr: commands.ErrSameAccount, wantMsg: "must differ"},
		{name: "transfer zero", setup: bankSetup, cmd: call{"bank.transfer", `{"from":"alice","to":"bob","amount":0}`},
			wantErr: commands.ErrInvalidAmount},
		{name: "transfer overflow", setup: append(slices.Clone(bankSetup), call{"bank.deposit", maxDeposit}),
			cmd:     call{"bank.transfer", `{"from":"alice","to":"bob","amount":1}`},
			wantErr: commands.ErrOverflow},

		// counter.increment
		{name: "counter first", cmd: call{"counter.increment", `{"counter":"c"}`},
			want: []wantEvent{{"counter-c", commands.EventIncremented, `{"count":1}`}}},
		{name: "counter third",
			setup: []call{{"counter.increment", `{"counter":"c"}`}, {"counter.increment", `{"counter":"c"}`}, {"counter.increment", `{"counter":"other"}`}},
			cmd:   call{"counter.increment", `{"counter":"c"}`},
			want:  []wantEvent{{"counter-c", commands.EventIncremented, `{"count":3}`}}},

		// an account stream another writer spoiled
		{name: "corrupt account data",
			setup:   []call{{"bank.open", `{"account":"x","owner":"X"}`}, {"append", `{"stream":"account-x","type":"Deposited","data":{"amount":"lots"}}`}},
			cmd:     call{"bank.withdraw", `{"account":"x","amount":1}`},
			wantErr: commands.ErrCorruptAccount, wantMsg: "position 2"},
		{name: "deposit before open",
			setup:   []call{{"append", `{"stream":"account-x","type":"Deposited","data":{"amount":5}}`}},
			cmd:     call{"bank.deposit", `{"account":"x","amount":1}`},
			wantErr: commands.ErrCorruptAccount, wantMsg: "before the account was opened"},
		{name: "unknown event types are ignored",
			setup: []call{{"bank.open", `{"account":"x","owner":"X"}`}, {"append", `{"stream":"account-x","type":"Audited","data":{"by":"eve"}}`}},
			cmd:   call{"bank.deposit", `{"account":"x","amount":1}`},
			want:  []wantEvent{{"account-x", commands.EventDeposited, `{"amount":1,"balance":1}`}}},
	}
	reg := commands.Builtin()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, ex := open(t)
			run(t, reg, ex, tt.setup...)
			head := store.Head()
			res, err := reg.Run(context.Background(), ex, tt.cmd.name, json.RawMessage(tt.cmd.args))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if errors.Is(err, commands.ErrBadArgs) {
					t.Errorf("domain failure %v also matches ErrBadArgs", err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
				}
				if got := store.Head(); got != head {
					t.Errorf("failed command moved head from %d to %d", head, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != len(tt.want) {
				t.Fatalf("appended %d events, want %d: %+v", len(res.Events), len(tt.want), res.Events)
			}
			for i, w := range tt.want {
				ev := res.Events[i]
				if ev.Stream != w.stream || ev.Type != w.typ || string(ev.Data) != w.data {
					t.Errorf("event %d = %s %s %s, want %s %s %s", i, ev.Stream, ev.Type, ev.Data, w.stream, w.typ, w.data)
				}
			}
			if res.Position != store.Head() || res.Position != head+uint64(len(tt.want)) {
				t.Errorf("result position %d, head before %d, after %d", res.Position, head, store.Head())
			}
		})
	}
}

func TestBadArgs(t *testing.T) {
	tests := []struct {
		cmd, args string
		field     string // must appear quoted in the message
		reason    string
	}{
		{"append", `{"stream":"s","type":"T"}`, "data", "is missing"},
		{"append", `{"type":"T","data":1}`, "stream", "is missing"},
		{"append", `{"stream":null,"type":"T","data":1}`, "stream", "is missing"},
		{"append", `{"stream":"s","type":"T","data":1,"extra":true}`, "extra", "is not a known field"},
		{"append", `{"Stream":"s","type":"T","data":1}`, "Stream", "is not a known field"},
		{"append", `{"stream":"s","stream":"t","type":"T","data":1}`, "stream", "appears twice"},
		{"append", `{"stream":7,"type":"T","data":1}`, "stream", "must be a string, got number"},
		{"append", `{"stream":"","type":"T","data":1}`, "stream", "must not be empty"},
		{"append", `{"stream":"a\u0001b","type":"T","data":1}`, "stream", "control character"},
		{"append", `{"stream":"` + strings.Repeat("s", 256) + `","type":"T","data":1}`, "stream", "the limit is 255"},
		{"append", `{"stream":"s","type":"` + strings.Repeat("t", 256) + `","data":1}`, "type", "the limit is 255"},
		{"append", `{"stream":"s","type":"T","data":1,"expect":-1}`, "expect", "must be an integer from 0"},
		{"append", `{"stream":"s","type":"T","data":1,"expect":1.5}`, "expect", "got 1.5"},
		{"append", `{"stream":"s","type":"T","data":1,"expect":"3"}`, "expect", "got string"},
		{"bank.open", `{"account":"a"}`, "owner", "is missing"},
		{"bank.open", `{"account":["a"],"owner":"A"}`, "account", "got array"},
		{"bank.open", `{"account":"` + strings.Repeat("a", 250) + `","owner":"A"}`, "account", "invalid stream id"},
		{"bank.deposit", `{"account":"a","amount":"500"}`, "amount", "got string"},
		{"bank.deposit", `{"account":"a","amount":5.5}`, "amount", "must be an integer"},
		{"bank.deposit", `{"account":"a","amount":1e3}`, "amount", "got 1e3"},
		{"bank.deposit", `{"account":"a","amount":9223372036854775808}`, "amount", "must be an integer"},
		{"bank.deposit", `{"account":"a"}`, "amount", "is missing"},
		{"bank.withdraw", `{"account":true,"amount":1}`, "account", "got boolean"},
		{"bank.transfer", `{"from":"a","amount":1}`, "to", "is missing"},
		{"bank.transfer", `{"from":"a","to":"b","amount":1,"memo":"x"}`, "memo", "is not a known field"},
		{"counter.increment", ``, "counter", "is missing"},
		{"counter.increment", `{"counter":{}}`, "counter", "got object"},
		// the whole value
		{"counter.increment", `[1]`, "", "must be a JSON object, got array"},
		{"counter.increment", `"c"`, "", "must be a JSON object, got string"},
		{"counter.increment", `{"counter":"c"`, "", "not valid JSON"},
		{"counter.increment", `{"counter":"c"} {}`, "", "not valid JSON"},
		{"counter.increment", `{counter:"c"}`, "", "not valid JSON"},
	}
	reg := commands.Builtin()
	store, ex := open(t)
	for _, tt := range tests {
		t.Run(tt.cmd+" "+tt.args, func(t *testing.T) {
			spec, _ := reg.Lookup(tt.cmd)
			for _, err := range []error{
				reg.Check(tt.cmd, json.RawMessage(tt.args)),
				func() error {
					_, err := reg.Run(context.Background(), ex, tt.cmd, json.RawMessage(tt.args))
					return err
				}(),
			} {
				if !errors.Is(err, commands.ErrBadArgs) {
					t.Fatalf("err = %v, want ErrBadArgs", err)
				}
				msg := err.Error()
				if tt.field != "" && !strings.Contains(msg, fmt.Sprintf("field %q", tt.field)) {
					t.Errorf("%q does not name field %q", msg, tt.field)
				}
				if !strings.Contains(msg, tt.reason) || !strings.Contains(msg, spec.Args) || !strings.Contains(msg, tt.cmd) {
					t.Errorf("%q: want the command, %q and the shape %s", msg, tt.reason, spec.Args)
				}
				var ae *commands.ArgsError
				if !errors.As(err, &ae) || ae.Field != tt.field || ae.Command != tt.cmd {
					t.Errorf("ArgsError = %+v, want field %q", ae, tt.field)
				}
			}
		})
	}
	if store.Head() != 0 {
		t.Errorf("bad arguments wrote %d events", store.Head())
	}
	// An invalid stream id also matches format.ErrInvalid.
	if err := reg.Check("append", json.RawMessage(`{"stream":"a\nb","type":"T","data":1}`)); !errors.Is(err, format.ErrInvalid) {
		t.Errorf("invalid stream: %v, want format.ErrInvalid too", err)
	}
}

func TestRegistry(t *testing.T) {
	reg := commands.Builtin()
	var names []string
	for _, s := range reg.All() {
		names = append(names, s.Name)
		if s.Args == "" || s.Summary == "" || s.Run == nil || s.Check == nil {
			t.Errorf("%s: incomplete spec %+v", s.Name, s)
		}
	}
	want := []string{"append", "bank.deposit", "bank.open", "bank.transfer", "bank.withdraw", "counter.increment"}
	if !slices.Equal(names, want) {
		t.Errorf("All() = %v, want %v", names, want)
	}
	if _, ok := reg.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
	err := reg.Check("nope", nil)
	if !errors.Is(err, commands.ErrUnknownCommand) || !strings.Contains(err.Error(), "bank.transfer") {
		t.Errorf("Check(nope) = %v, want ErrUnknownCommand listing the known commands", err)
	}
	if err := reg.Register(commands.Spec{Name: "append", Run: want0}); err == nil {
		t.Error("registering append twice succeeded")
	}
	if err := reg.Register(commands.Spec{Name: "x"}); err == nil {
		t.Error("registering a nil Run succeeded")
	}
	if err := reg.Register(commands.Spec{Name: "x.noop", Run: want0}); err != nil {
		t.Fatal(err)
	}
	if _, ok := commands.Builtin().Lookup("x.noop"); ok {
		t.Error("registries share state")
	}
	if err := reg.Check("x.noop", json.RawMessage("garbage")); err != nil {
		t.Errorf("a spec without Check: %v", err)
	}
}

func want0(context.Context, *executor.Executor, json.RawMessage, ...executor.ExecOption) (executor.Result, error) {
	return executor.Result{}, nil
}

func TestExecOptionsPassThrough(t *testing.T) {
	store, ex := open(t)
	reg := commands.Builtin()
	args := json.RawMessage(`{"counter":"c"}`)
	first, err := reg.Run(context.Background(), ex, "counter.increment", args,
		executor.Idempotent("k1"), executor.WithMetadata(map[string]string{"correlation-id": "c1"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Events[0].Metadata["correlation-id"]; got != "c1" {
		t.Errorf("metadata = %v", first.Events[0].Metadata)
	}
	again, err := reg.Run(context.Background(), ex, "counter.increment", args, executor.Idempotent("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Position != first.Position || store.Head() != 1 {
		t.Errorf("replay: position %d (first %d), head %d", again.Position, first.Position, store.Head())
	}
}

func TestBalance(t *testing.T) {
	store, ex := open(t)
	reg := commands.Builtin()
	ctx := context.Background()
	run(t, reg, ex, bankSetup...)
	run(t, reg, ex,
		call{"bank.transfer", `{"from":"alice","to":"bob","amount":300}`},
		call{"bank.withdraw", `{"account":"bob","amount":100}`},
	)
	for _, tt := range []struct {
		id      string
		balance int64
		open    bool
	}{{"alice", 700, true}, {"bob", 200, true}, {"carol", 0, false}} {
		b, ok, err := commands.Balance(ctx, store, tt.id)
		if err != nil || b != tt.balance || ok != tt.open {
			t.Errorf("Balance(%s) = %d, %v, %v; want %d, %v", tt.id, b, ok, err, tt.balance, tt.open)
		}
	}
	acct, err := commands.ReadAccount(ctx, store, "bob")
	if err != nil || acct.Owner != "Bob" || acct.Version != 3 || acct.ID != "bob" {
		t.Errorf("ReadAccount(bob) = %+v, %v", acct, err)
	}
	run(t, reg, ex, call{"append", `{"stream":"account-bob","type":"Withdrawn","data":{"amount":1000}}`})
	if _, _, err := commands.Balance(ctx, store, "bob"); !errors.Is(err, commands.ErrCorruptAccount) {
		t.Errorf("overdrawn stream: %v, want ErrCorruptAccount", err)
	}
}

// TestConcurrentTransfers checks that concurrent transfers between the same
// accounts neither lose nor create money: each one reads and writes both
// accounts atomically.
func TestConcurrentTransfers(t *testing.T) {
	store, ex := open(t)
	reg := commands.Builtin()
	ctx := context.Background()
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		run(t, reg, ex, call{"bank.open", fmt.Sprintf(`{"account":%q,"owner":"O"}`, id)},
			call{"bank.deposit", fmt.Sprintf(`{"account":%q,"amount":1000}`, id)})
	}
	ex = executor.New(store, executor.Options{MaxRetries: 1000})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unexpected []error
	for w := range 12 {
		wg.Go(func() {
			for i := range 15 {
				from, to := ids[(w+i)%3], ids[(w+i+1)%3]
				_, err := reg.Run(ctx, ex, "bank.transfer", json.RawMessage(fmt.Sprintf(`{"from":%q,"to":%q,"amount":%d}`, from, to, 1+(w*i)%400)))
				if err != nil && !errors.Is(err, commands.ErrInsufficientFunds) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Go(func() {
		for range 30 {
			if _, err := reg.Run(ctx, ex, "counter.increment", json.RawMessage(`{"counter":"hot"}`)); err != nil {
				mu.Lock()
				unexpected = append(unexpected, err)
				mu.Unlock()
			}
		}
	})
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatal(unexpected)
	}
	var total int64
	for _, id := range ids {
		b, _, err := commands.Balance(ctx, store, id)
		if err != nil || b < 0 {
			t.Fatalf("Balance(%s) = %d, %v", id, b, err)
		}
		total += b
	}
	if total != 3000 {
		t.Errorf("total balance %d, want 3000", total)
	}
	if v, _ := store.Version(commands.CounterStream("hot")); v != 30 {
		t.Errorf("counter at version %d, want 30", v)
	}
}
