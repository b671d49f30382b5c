package commands

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

// Balances is an in-store projection of every account's balance: run it
// with projection.Run and read it with [ProjectedBalance], which costs one
// key lookup instead of a fold of the account's stream.
//
// It checks that each account's events arrive with consecutive versions,
// so an event applied twice or skipped stops it with an error instead of
// giving a wrong balance.
type Balances struct{}

// BalancesName is the name [Balances] runs under.
const BalancesName = "bank.balances"

// BalancesOptions are the options [Balances] is meant to run with: only
// account streams reach Apply.
func BalancesOptions() projection.Options {
	return projection.Options{StreamPrefixes: []string{AccountStream("")}}
}

// Name implements projection.Projection.
func (Balances) Name() string { return BalancesName }

// An account's projected entry: balance(8, BE, two's complement)
// version(8, BE) open(1).
const balanceEntryBytes = 17

// Apply implements projection.Projection.
func (Balances) Apply(tx *projection.Tx, ev format.Event) error {
	id, ok := strings.CutPrefix(ev.Stream, AccountStream(""))
	if !ok {
		return nil
	}
	key := []byte(id)
	a, err := decodeBalanceEntry(tx.Get(key))
	if err != nil {
		return err
	}
	if ev.Version != a.Version+1 {
		return fmt.Errorf("account %q: event version %d follows version %d: an event was skipped or applied twice", id, ev.Version, a.Version)
	}
	a.ID = id
	if err := a.Apply(ev); err != nil {
		return err
	}
	out := make([]byte, 0, balanceEntryBytes)
	out = binary.BigEndian.AppendUint64(out, uint64(a.Balance))
	out = binary.BigEndian.AppendUint64(out, a.Version)
	if a.Open {
		out = append(out, 1)
	} else {
		out = append(out, 0)
	}
	return tx.Put(key, out)
}

func decodeBalanceEntry(b []byte) (Account, error) {
	if b == nil {
		return Account{}, nil
	}
	if len(b) != balanceEntryBytes {
		return Account{}, fmt.Errorf("projected balance entry is %d bytes, want %d", len(b), balanceEntryBytes)
	}
	if b[16] > 1 {
		return Account{}, fmt.Errorf("projected balance entry has open flag %d, want 0 or 1", b[16])
	}
	return Account{
		Balance: int64(binary.BigEndian.Uint64(b)),
		Version: binary.BigEndian.Uint64(b[8:]),
		Open:    b[16] == 1,
	}, nil
}

// ProjectedBalance returns account id as the [Balances] projection last
// saw it: its balance in cents, whether it is open, and the version of its
// stream applied (compare with Store.Version to see how far behind). The
// owner is not projected.
func ProjectedBalance(s *local.Store, id string) (Account, error) {
	v, err := projection.Get(s, BalancesName, []byte(id))
	if err != nil {
		return Account{}, err
	}
	a, err := decodeBalanceEntry(v)
	a.ID = id
	return a, err
}
