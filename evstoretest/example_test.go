package evstoretest_test

import (
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/evstoretest"
)

// README: the test kit example starts here.
func TestTransferMovesMoney(t *testing.T) {
	evstoretest.Given(t,
		evstoretest.Event("account-alice", "AccountOpened", `{"account":"alice","owner":"Alice"}`),
		evstoretest.Event("account-alice", "Deposited", `{"amount":500,"balance":500}`),
		evstoretest.Event("account-bob", "AccountOpened", `{"account":"bob","owner":"Bob"}`),
	).WhenRun(commands.Builtin(), "bank.transfer", `{"from":"alice","to":"bob","amount":200}`).Then(
		evstoretest.Event("account-alice", "TransferSent", `{"amount":200,"to":"bob","balance":300}`),
		evstoretest.Event("account-bob", "TransferReceived", `{"amount":200,"from":"alice","balance":200}`),
	)
}

// README: the test kit example ends here.
