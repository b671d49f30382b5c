package format

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeRecord feeds arbitrary bytes to the decoder: it must never panic,
// must report failures as ErrCorrupt, and whatever it accepts must re-encode
// to exactly the same bytes (the encoding is canonical).
func FuzzDecodeRecord(f *testing.F) {
	ev := sampleEvent()
	rec, _ := AppendRecord(nil, &ev)
	f.Add(rec)
	ev.Metadata, ev.Data = nil, nil
	rec, _ = AppendRecord(nil, &ev)
	f.Add(rec)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeRecord(3, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := AppendRecord(nil, &got)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		back, err := DecodeRecord(3, again)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoded record decodes differently: %v", err)
		}
	})
}
