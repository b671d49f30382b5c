package commands

import (
	"context"
	"errors"
	"testing"

	"github.com/evstore/evstore/evstoretest"
	"github.com/evstore/evstore/format"
)

// Handle on its own: the state comes from evstoretest.Fold, no store.
func TestHandleAlone(t *testing.T) {
	opened := func(id string) format.EventData {
		return evstoretest.Event(AccountStream(id), EventAccountOpened, `{"account":"`+id+`","owner":"O"}`)
	}
	funded := evstoretest.Event(AccountStream("a"), EventDeposited, `{"amount":700,"balance":700}`)
	ctx := context.Background()

	tr := moneyCmd{op: opTransfer, id: "a", to: "b", amount: 300}
	st := evstoretest.Fold[accounts](tr, opened("a"), funded, opened("b"), evstoretest.Event("other", "X", `{}`))
	if a, b := st.get("a").acct, st.get("b").acct; a.Balance != 700 || !b.Open || a.Version != 2 {
		t.Fatalf("folded %+v", st)
	}
	evs, err := tr.Handle(ctx, st)
	if err != nil || len(evs) != 2 || evs[0].Type != EventTransferSent || string(evs[1].Data) != `{"amount":300,"balance":300,"from":"a"}` {
		t.Fatalf("Handle = %+v, %v", evs, err)
	}
	big := moneyCmd{op: opTransfer, id: "a", to: "b", amount: 701}
	if _, err := big.Handle(ctx, evstoretest.Fold[accounts](big, opened("a"), funded, opened("b"))); !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("overdraft: %v", err)
	}

	w := moneyCmd{op: opWithdraw, id: "a", amount: 700}
	evs, err = w.Handle(ctx, evstoretest.Fold[accounts](w, opened("a"), funded))
	if err != nil || string(evs[0].Data) != `{"amount":700,"balance":0}` {
		t.Errorf("withdraw all: %+v, %v", evs, err)
	}
	if _, err := w.Handle(ctx, evstoretest.Fold[accounts](w)); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("withdraw from nothing: %v", err)
	}

	c := counterCmd{stream: CounterStream("x")}
	inc := evstoretest.Event(CounterStream("x"), EventIncremented, `{}`)
	evs, err = c.Handle(ctx, evstoretest.Fold[counterState](c, inc, inc, evstoretest.Event(CounterStream("y"), EventIncremented, `{}`)))
	if err != nil || string(evs[0].Data) != `{"count":3}` {
		t.Errorf("counter: %+v, %v", evs, err)
	}
}
