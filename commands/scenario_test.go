package commands_test

import (
	"context"
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/evstoretest"
	"github.com/evstore/evstore/projection"
)

var (
	aliceOpened = evstoretest.Event("account-alice", commands.EventAccountOpened, `{"account":"alice","owner":"Alice"}`)
	bobOpened   = evstoretest.Event("account-bob", commands.EventAccountOpened, `{"account":"bob","owner":"Bob"}`)
	aliceFunded = evstoretest.Event("account-alice", commands.EventDeposited, `{"amount":1000,"balance":1000}`)
)

// The bank's rules as scenarios: given an account's story, when a
// command, then its events or its refusal.
func TestBankScenarios(t *testing.T) {
	reg := commands.Builtin()
	evstoretest.Given(t).WhenRun(reg, "bank.open", `{"account":"alice","owner":"Alice"}`).Then(aliceOpened)
	evstoretest.Given(t, aliceOpened).WhenRun(reg, "bank.open", `{"account":"alice","owner":"A"}`).ThenError(commands.ErrAccountExists)
	evstoretest.Given(t, aliceOpened, aliceFunded).WhenRun(reg, "bank.deposit", `{"account":"alice","amount":5}`).
		Then(evstoretest.Event("account-alice", commands.EventDeposited, `{"amount":5,"balance":1005}`))
	evstoretest.Given(t, aliceOpened, aliceFunded).WhenRun(reg, "bank.withdraw", `{"account":"alice","amount":1001}`).
		ThenError(commands.ErrInsufficientFunds)
	evstoretest.Given(t, aliceOpened, aliceFunded, bobOpened).WhenRun(reg, "bank.transfer", `{"from":"alice","to":"bob","amount":1000}`).Then(
		evstoretest.Event("account-alice", commands.EventTransferSent, `{"amount":1000,"balance":0,"to":"bob"}`),
		evstoretest.Event("account-bob", commands.EventTransferReceived, `{"amount":1000,"balance":1000,"from":"alice"}`),
	)
	evstoretest.Given(t, aliceOpened, aliceFunded).WhenRun(reg, "bank.transfer", `{"from":"alice","to":"bob","amount":1}`).
		ThenError(commands.ErrUnknownAccount)
	// An event another writer put on the account stream that the fold
	// cannot accept stops every command on it.
	evstoretest.Given(t, aliceOpened, evstoretest.Event("account-alice", commands.EventDeposited, `{"amount":"lots"}`)).
		WhenRun(reg, "bank.deposit", `{"account":"alice","amount":1}`).ThenError(commands.ErrCorruptAccount)
}

func TestCounterScenarios(t *testing.T) {
	reg := commands.Builtin()
	evstoretest.Given(t).WhenRun(reg, "counter.increment", `{"counter":"c"}`).
		Then(evstoretest.Event("counter-c", commands.EventIncremented, `{"count":1}`))
	evstoretest.Given(t,
		evstoretest.Event("counter-c", commands.EventIncremented, `{"count":1}`),
		evstoretest.Event("counter-d", commands.EventIncremented, `{"count":1}`),
		// Any event counts, whoever wrote it.
		evstoretest.Event("counter-c", "Annotated", `{}`),
	).WhenRun(reg, "counter.increment", `{"counter":"c"}`).
		Then(evstoretest.Event("counter-c", commands.EventIncremented, `{"count":3}`))
	evstoretest.Given(t).WhenRun(reg, "counter.increment", `{"counter":""}`).ThenError(commands.ErrBadArgs)
}

// TestBalancesProjection checks the balances projection against the fold
// the commands use, and that it refuses a stream it has already applied.
func TestBalancesProjection(t *testing.T) {
	reg := commands.Builtin()
	sc := evstoretest.Given(t, aliceOpened, aliceFunded, bobOpened)
	sc.WhenRun(reg, "bank.transfer", `{"from":"alice","to":"bob","amount":300}`)
	sc.WhenRun(reg, "bank.withdraw", `{"account":"bob","amount":100}`)
	sc.WhenRun(reg, "counter.increment", `{"counter":"c"}`)
	ctx := context.Background()
	opts := commands.BalancesOptions()
	opts.Once = true
	if err := projection.Run(ctx, sc.Store, commands.Balances{}, opts); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"alice", "bob", "carol"} {
		folded, err := commands.ReadAccount(ctx, sc.Store, id)
		if err != nil {
			t.Fatal(err)
		}
		projected, err := commands.ProjectedBalance(sc.Store, id)
		folded.Owner = "" // not projected
		if err != nil || projected != folded {
			t.Errorf("%s: projected %+v (%v), folded %+v", id, projected, err, folded)
		}
	}
	if pos, _ := projection.Position(sc.Store, commands.BalancesName); pos != sc.Store.Head() {
		t.Errorf("checkpoint %d, head %d", pos, sc.Store.Head())
	}
}
