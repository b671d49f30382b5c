package commands

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecodeBalanceEntry feeds the projected-balance decoder arbitrary
// bytes: an error or an entry that encodes back the same, never a panic.
func FuzzDecodeBalanceEntry(f *testing.F) {
	entry := binary.BigEndian.AppendUint64(nil, 1500)
	entry = binary.BigEndian.AppendUint64(entry, 7)
	f.Add(append(entry, 1))
	f.Add(append(bytes.Clone(entry), 0))
	f.Add([]byte{})
	f.Add(entry)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeBalanceEntry(b)
		if err != nil || len(b) == 0 {
			return
		}
		got := binary.BigEndian.AppendUint64(nil, uint64(a.Balance))
		got = binary.BigEndian.AppendUint64(got, a.Version)
		if a.Open {
			got = append(got, 1)
		} else {
			got = append(got, 0)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("decode(%x) = %+v, re-encodes as %x", b, a, got)
		}
	})
}
