package projection

import (
	"github.com/evstore/evstore/local"
)

// Tx is a projection's own key space during one batch. Keys are the
// projection's alone: two projections never see each other's.
//
// Reads see the writes of the events applied before in the same batch.
// Everything a batch writes commits in one transaction with the
// projection's checkpoint; the writes of an event whose Apply fails are
// undone. A Tx is valid only during Apply.
type Tx struct {
	st  *local.SpaceTx
	key []byte // prefixed-key buffer, reused
}

func (tx *Tx) prefixed(key []byte) []byte {
	tx.key = append(append(tx.key[:0], prefixData), key...)
	return tx.key
}

// Get returns the value stored under key, nil if there is none. The slice
// is valid only during Apply and must not be modified; copy it to keep it.
func (tx *Tx) Get(key []byte) []byte {
	return tx.st.Get(tx.prefixed(key))
}

// Put stores value under key (both are copied). Keys are 1 to 32,767 bytes.
func (tx *Tx) Put(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return tx.st.Put(tx.prefixed(key), value)
}

// Delete removes key; a missing key is not an error.
func (tx *Tx) Delete(key []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return tx.st.Delete(tx.prefixed(key))
}
