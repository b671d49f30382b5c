package projection

import (
	"testing"
	"time"
)

// FuzzDecodeState feeds the state decoder arbitrary bytes: it must return
// an error or a state that encodes back to the same bytes, never panic.
func FuzzDecodeState(f *testing.F) {
	for _, st := range []state{
		{kind: KindInStore, position: 42, updated: time.Unix(1, 5).UTC()},
		{kind: KindExternal, position: 7, updated: time.Unix(2, 0).UTC(), errPos: 8, errMsg: "table is full"},
	} {
		f.Add(st.appendTo(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil || b == nil {
			return
		}
		if got := st.appendTo(nil); string(got) != string(b) {
			t.Fatalf("decode(%x) re-encodes as %x", b, got)
		}
	})
}
