package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/buger/jsonparser"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Event types of an account stream. Every money event carries "amount" (a
// positive number of cents) and "balance" (the balance after the event, for
// readers; the fold recomputes it from the amounts).
const (
	EventAccountOpened    = "AccountOpened"    // {"account":"alice","owner":"Alice"}
	EventDeposited        = "Deposited"        // {"amount":500,"balance":1500}
	EventWithdrawn        = "Withdrawn"        // {"amount":500,"balance":1000}
	EventTransferSent     = "TransferSent"     // {"amount":500,"to":"bob","balance":500}
	EventTransferReceived = "TransferReceived" // {"amount":500,"from":"alice","balance":2500}
)

// Sentinels of the bank's domain failures, for errors.Is. Each is wrapped by
// a structured error type that says which account and which amounts.
var (
	ErrUnknownAccount    = errors.New("unknown account")
	ErrAccountExists     = errors.New("account already open")
	ErrSameAccount       = errors.New("same account twice")
	ErrInvalidAmount     = errors.New("amount must be positive")
	ErrInsufficientFunds = errors.New("insufficient funds")
	ErrOverflow          = errors.New("balance overflow")
	// ErrCorruptAccount means an account stream holds an event the fold
	// cannot accept (written, say, by the generic append command); no
	// command runs on such an account rather than guess its balance.
	ErrCorruptAccount = errors.New("corrupt account stream")
)

// AccountError is a failure about one account: it wraps
// [ErrUnknownAccount], [ErrAccountExists] or [ErrSameAccount].
type AccountError struct {
	Account string
	Err     error
}

func (e *AccountError) Error() string {
	switch e.Err {
	case ErrUnknownAccount:
		return fmt.Sprintf("unknown account %q: open it first with bank.open", e.Account)
	case ErrAccountExists:
		return fmt.Sprintf("account %q is already open", e.Account)
	case ErrSameAccount:
		return fmt.Sprintf("cannot transfer from account %q to itself: from and to must differ", e.Account)
	}
	return fmt.Sprintf("account %q: %v", e.Account, e.Err)
}

func (e *AccountError) Unwrap() error { return e.Err }

// AmountError reports an amount that is not a positive number of cents. It
// unwraps to [ErrInvalidAmount].
type AmountError struct{ Amount int64 }

func (e *AmountError) Error() string {
	return fmt.Sprintf("amount must be a positive number of cents, got %d", e.Amount)
}

func (e *AmountError) Unwrap() error { return ErrInvalidAmount }

// InsufficientFundsError reports a withdrawal or transfer larger than the
// balance. It unwraps to [ErrInsufficientFunds].
type InsufficientFundsError struct {
	Account string
	Op      string // "withdrawal" or "transfer"
	Balance int64  // cents
	Amount  int64  // cents
}

func (e *InsufficientFundsError) Error() string {
	return fmt.Sprintf("insufficient funds in account %q: balance is %d cents, the %s of %d cents is %d cents short",
		e.Account, e.Balance, e.Op, e.Amount, e.Amount-e.Balance)
}

func (e *InsufficientFundsError) Unwrap() error { return ErrInsufficientFunds }

// OverflowError reports a credit that would push a balance past the largest
// int64. It unwraps to [ErrOverflow].
type OverflowError struct {
	Account string
	Balance int64
	Amount  int64
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("balance of account %q would overflow: %d + %d cents exceeds %d", e.Account, e.Balance, e.Amount, int64(math.MaxInt64))
}

func (e *OverflowError) Unwrap() error { return ErrOverflow }

// CorruptAccountError names the event an account fold refused. It unwraps
// to [ErrCorruptAccount].
type CorruptAccountError struct {
	Account  string
	Position uint64
	Reason   string
}

func (e *CorruptAccountError) Error() string {
	return fmt.Sprintf("account %q: event at position %d: %s", e.Account, e.Position, e.Reason)
}

func (e *CorruptAccountError) Unwrap() error { return ErrCorruptAccount }

// accountPrefix starts the stream id of every bank account.
const accountPrefix = "account-"

// AccountStream returns the stream id of a bank account.
func AccountStream(id string) string { return accountPrefix + id }

// Account is the state of one bank account, folded from its stream.
type Account struct {
	ID      string
	Owner   string
	Open    bool
	Balance int64  // cents
	Version uint64 // version of the last event folded, 0 if none
}

type moneyData struct {
	Amount  *int64 `json:"amount"`
	Balance int64  `json:"balance"`
	To      string `json:"to,omitempty"`
	From    string `json:"from,omitempty"`
}

type openedData struct {
	Account string `json:"account"`
	Owner   string `json:"owner"`
}

// Apply folds one event of the account's stream into a. It ignores event
// types it does not know, so other writers may annotate an account stream,
// but refuses a known event it cannot make sense of.
func (a *Account) Apply(ev format.Event) error {
	bad := func(format string, v ...any) error {
		return &CorruptAccountError{Account: a.ID, Position: ev.Position, Reason: fmt.Sprintf(format, v...)}
	}
	a.Version = ev.Version
	switch ev.Type {
	case EventAccountOpened:
		var d openedData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return bad("%s data is not valid: %v", ev.Type, err)
		}
		if a.Open {
			return bad("account opened twice")
		}
		a.Open, a.Owner = true, d.Owner
		return nil
	case EventDeposited, EventTransferReceived, EventWithdrawn, EventTransferSent:
	default:
		return nil
	}
	amount, err := decodeAmount(ev.Data)
	switch {
	case err != nil:
		return bad("%s data is not valid: %v", ev.Type, err)
	case !a.Open:
		return bad("%s before the account was opened", ev.Type)
	case amount <= 0:
		return bad("%s without a positive amount", ev.Type)
	}
	if ev.Type == EventWithdrawn || ev.Type == EventTransferSent {
		if amount > a.Balance {
			return bad("%s of %d cents exceeds the balance of %d", ev.Type, amount, a.Balance)
		}
		a.Balance -= amount
		return nil
	}
	if amount > math.MaxInt64-a.Balance {
		return bad("%s of %d cents overflows the balance of %d", ev.Type, amount, a.Balance)
	}
	a.Balance += amount
	return nil
}

// decodeAmount reads the amount of a money event. It runs for every event
// of every account a command folds, so it skips encoding/json's reflection
// (about 0.8 µs and 7 allocations an event, the largest CPU cost of a
// transfer): json.Valid keeps it as strict about the payload, and jsonparser
// picks out the one field the fold needs without allocating.
func decodeAmount(data []byte) (int64, error) {
	if !json.Valid(data) {
		return 0, errors.New("not valid JSON")
	}
	amount, err := jsonparser.GetInt(data, "amount")
	if errors.Is(err, jsonparser.KeyPathNotFoundError) {
		return 0, nil // reported as "without a positive amount"
	}
	if err != nil {
		return 0, fmt.Errorf("amount: %v", err)
	}
	return amount, nil
}

// ReadAccount folds the stream of account id from the store. An account
// that was never opened is returned with Open false and no error.
func ReadAccount(ctx context.Context, store *local.Store, id string) (Account, error) {
	a := Account{ID: id}
	for ev, err := range store.ReadStream(AccountStream(id), 1) {
		if err != nil {
			return a, err
		}
		if err := ctx.Err(); err != nil {
			return a, err
		}
		if err := a.Apply(ev); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Balance returns the balance of account id in cents and whether the
// account is open.
func Balance(ctx context.Context, store *local.Store, id string) (cents int64, open bool, err error) {
	a, err := ReadAccount(ctx, store, id)
	return a.Balance, a.Open, err
}

// accountState is the fold of a command on one account. Apply cannot return
// an error, so the first one is kept and returned by Handle.
type accountState struct {
	acct Account
	err  error
}

func (s *accountState) apply(id string, ev format.Event) {
	if s.err != nil {
		return
	}
	s.acct.ID = id
	s.err = s.acct.Apply(ev)
}

func moneyEvent(stream, typ string, d moneyData) format.EventData {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // ints and strings always marshal
	}
	return format.EventData{Stream: stream, Type: typ, Data: b}
}

// accountArg decodes an account id field and checks the stream it names.
func accountArg(a *args, field string) (string, error) {
	id, err := a.text(field)
	if err != nil {
		return "", err
	}
	return id, a.stream(field, AccountStream(id))
}

// amountArg decodes an amount field. A non-positive amount is a domain
// failure rather than bad arguments: the JSON is well formed, the bank
// refuses the value.
func amountArg(a *args, field string) (int64, error) {
	n, err := a.cents(field)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, &AmountError{Amount: n}
	}
	return n, nil
}

// bank.open

const openShape = `{"account": string, "owner": string}`

func openSpec() Spec {
	return define("bank.open", openShape, "Open a bank account (stream account-<id>) with a zero balance.", parseOpen)
}

type openCmd struct{ id, owner string }

func parseOpen(raw json.RawMessage) (executor.Command[accountState], error) {
	a, err := parseArgs("bank.open", openShape, raw, "account", "owner")
	if err != nil {
		return nil, err
	}
	var c openCmd
	if c.id, err = accountArg(a, "account"); err != nil {
		return nil, err
	}
	if c.owner, err = a.text("owner"); err != nil {
		return nil, err
	}
	return c, nil
}

func (c openCmd) Streams() []string { return []string{AccountStream(c.id)} }

func (c openCmd) Apply(s *accountState, ev format.Event) { s.apply(c.id, ev) }

func (c openCmd) Handle(_ context.Context, s accountState) ([]format.EventData, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.acct.Open {
		return nil, &AccountError{Account: c.id, Err: ErrAccountExists}
	}
	b, err := json.Marshal(openedData{Account: c.id, Owner: c.owner})
	if err != nil {
		return nil, err
	}
	return []format.EventData{{Stream: AccountStream(c.id), Type: EventAccountOpened, Data: b}}, nil
}

// bank.deposit, bank.withdraw and bank.transfer

// The money commands are one Go type, moneyCmd, folding into one state
// layout, accounts: the executor keeps states per command type, SnapshotKey
// and stream (executor.StreamSnapshotter), so a single type with a layout
// that does not depend on the command lets every deposit, withdrawal and
// transfer start from one kept state per account, whatever the command or
// the pair of accounts before it. With a state per read set instead, a
// transfer between two of 1,000 accounts almost never found one kept for
// its pair and folded both accounts' whole history.

// moneyOp is what a moneyCmd does.
type moneyOp uint8

const (
	opDeposit moneyOp = iota
	opWithdraw
	opTransfer
)

const moneyShape = `{"account": string, "amount": integer cents > 0}`

func depositSpec() Spec {
	return define("bank.deposit", moneyShape, "Deposit cents into an open account.",
		func(raw json.RawMessage) (executor.Command[accounts], error) {
			return parseMoney("bank.deposit", raw, opDeposit)
		})
}

func withdrawSpec() Spec {
	return define("bank.withdraw", moneyShape, "Withdraw cents from an open account; fails if the balance is too low.",
		func(raw json.RawMessage) (executor.Command[accounts], error) {
			return parseMoney("bank.withdraw", raw, opWithdraw)
		})
}

// moneyCmd is a deposit, a withdrawal or a transfer. It keeps the name
// deposit and withdraw had alone because an idempotency key's fingerprint
// names the command's Go type: their keys stored by earlier builds still
// match (a transfer's, stored as transferCmd, do not).
type moneyCmd struct {
	op     moneyOp
	id     string // the account; a transfer's source
	to     string // a transfer's destination
	amount int64
}

func parseMoney(name string, raw json.RawMessage, op moneyOp) (executor.Command[accounts], error) {
	a, err := parseArgs(name, moneyShape, raw, "account", "amount")
	if err != nil {
		return nil, err
	}
	c := moneyCmd{op: op}
	if c.id, err = accountArg(a, "account"); err != nil {
		return nil, err
	}
	if c.amount, err = amountArg(a, "amount"); err != nil {
		return nil, err
	}
	return c, nil
}

// accounts is the state of a money command: each account it reads, folded
// from that account's stream alone. Which command folded it and in which
// order it read its streams leave no trace, so a kept part serves every
// command on that account. Two slots suffice: a command reads at most two
// accounts.
type accounts struct {
	n     int
	slots [2]accountState
}

// get returns the state of account id: zero (not open) if its stream had no
// events.
func (s *accounts) get(id string) accountState {
	for i := range s.n {
		if s.slots[i].acct.ID == id {
			return s.slots[i]
		}
	}
	return accountState{}
}

// slot returns the state of account id, taking a free slot for an account
// not seen yet; nil if none is free (a command never reads more than two
// accounts, so this does not happen).
func (s *accounts) slot(id string) *accountState {
	for i := range s.n {
		if s.slots[i].acct.ID == id {
			return &s.slots[i]
		}
	}
	if s.n == len(s.slots) {
		return nil
	}
	s.n++
	st := &s.slots[s.n-1]
	st.acct.ID = id
	return st
}

func (c moneyCmd) Streams() []string {
	if c.op == opTransfer {
		return []string{AccountStream(c.id), AccountStream(c.to)}
	}
	return []string{AccountStream(c.id)}
}

// Apply folds ev into its account's slot. The account comes from the
// event's stream, not from c, so the fold is the same for every command.
func (c moneyCmd) Apply(s *accounts, ev format.Event) {
	id, ok := strings.CutPrefix(ev.Stream, accountPrefix)
	if !ok {
		return // not an account stream (the executor gives none)
	}
	if st := s.slot(id); st != nil {
		st.apply(id, ev)
	}
}

// Bank commands fold from kept states; these fail to compile if a method
// signature drifts and the executor would silently fold from zero again,
// or keep a state per read set instead of one per account.
var _ executor.StreamSnapshotter[accounts] = moneyCmd{}

// SnapshotKey lets the executor keep each account's folded state between
// commands (executor.StreamSnapshotter), so a command folds and reads only
// what is new in each of its accounts. The fold depends only on the
// stream, which is part of the kept state's key, not on the command.
func (c moneyCmd) SnapshotKey() string { return "bank.account" }

// CloneState returns s: accounts holds no maps, slices or pointers.
func (c moneyCmd) CloneState(s accounts) accounts { return s }

// MergeState copies the account of stream, which part was folded from,
// into dst. An empty stream leaves nothing: the account is not open.
func (c moneyCmd) MergeState(dst *accounts, part accounts, stream string) {
	id, ok := strings.CutPrefix(stream, accountPrefix)
	if !ok || part.n == 0 {
		return
	}
	if st := dst.slot(id); st != nil {
		*st = part.get(id)
	}
}

func (c moneyCmd) Handle(ctx context.Context, s accounts) ([]format.EventData, error) {
	if c.op == opTransfer {
		return c.handleTransfer(ctx, s)
	}
	st := s.get(c.id)
	if st.err != nil {
		return nil, st.err
	}
	acct := st.acct
	if !acct.Open {
		return nil, &AccountError{Account: c.id, Err: ErrUnknownAccount}
	}
	if c.op == opWithdraw {
		if c.amount > acct.Balance {
			return nil, &InsufficientFundsError{Account: c.id, Op: "withdrawal", Balance: acct.Balance, Amount: c.amount}
		}
		return []format.EventData{moneyEvent(AccountStream(c.id), EventWithdrawn,
			moneyData{Amount: &c.amount, Balance: acct.Balance - c.amount})}, nil
	}
	if c.amount > math.MaxInt64-acct.Balance {
		return nil, &OverflowError{Account: c.id, Balance: acct.Balance, Amount: c.amount}
	}
	return []format.EventData{moneyEvent(AccountStream(c.id), EventDeposited,
		moneyData{Amount: &c.amount, Balance: acct.Balance + c.amount})}, nil
}

// bank.transfer

const transferShape = `{"from": string, "to": string, "amount": integer cents > 0}`

func transferSpec() Spec {
	return define("bank.transfer", transferShape,
		"Move cents between two open accounts atomically: one event on each account stream, or none.",
		parseTransfer)
}

func parseTransfer(raw json.RawMessage) (executor.Command[accounts], error) {
	a, err := parseArgs("bank.transfer", transferShape, raw, "from", "to", "amount")
	if err != nil {
		return nil, err
	}
	c := moneyCmd{op: opTransfer}
	if c.id, err = accountArg(a, "from"); err != nil {
		return nil, err
	}
	if c.to, err = accountArg(a, "to"); err != nil {
		return nil, err
	}
	if c.amount, err = amountArg(a, "amount"); err != nil {
		return nil, err
	}
	// Checked before anything is read: with one stream declared twice the
	// fold would see every event twice and both events would land on one
	// stream.
	if c.id == c.to {
		return nil, &AccountError{Account: c.id, Err: ErrSameAccount}
	}
	return c, nil
}

func (c moneyCmd) handleTransfer(_ context.Context, s accounts) ([]format.EventData, error) {
	sf, st := s.get(c.id), s.get(c.to)
	for _, a := range []accountState{sf, st} {
		if a.err != nil {
			return nil, a.err
		}
	}
	from, to := sf.acct, st.acct
	switch {
	case !from.Open:
		return nil, &AccountError{Account: c.id, Err: ErrUnknownAccount}
	case !to.Open:
		return nil, &AccountError{Account: c.to, Err: ErrUnknownAccount}
	case c.amount > from.Balance:
		return nil, &InsufficientFundsError{Account: c.id, Op: "transfer", Balance: from.Balance, Amount: c.amount}
	case c.amount > math.MaxInt64-to.Balance:
		return nil, &OverflowError{Account: c.to, Balance: to.Balance, Amount: c.amount}
	}
	return []format.EventData{
		moneyEvent(AccountStream(c.id), EventTransferSent, moneyData{Amount: &c.amount, To: c.to, Balance: from.Balance - c.amount}),
		moneyEvent(AccountStream(c.to), EventTransferReceived, moneyData{Amount: &c.amount, From: c.id, Balance: to.Balance + c.amount}),
	}, nil
}
