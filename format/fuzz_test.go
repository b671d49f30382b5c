package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
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
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical record:\n in %x\nout %x", b, again)
		}
		back, err := DecodeRecord(3, again)
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoded record decodes differently: %v", err)
		}
	})
}

// FuzzDecodeRecordBody fixes up the checksum before decoding, so the fuzzer
// explores the parser behind it instead of stopping at the CRC.
func FuzzDecodeRecordBody(f *testing.F) {
	ev := sampleEvent()
	rec, _ := AppendRecord(nil, &ev)
	f.Add(rec[4:])
	ev.Metadata = nil
	rec, _ = AppendRecord(nil, &ev)
	f.Add(rec[4:])
	f.Fuzz(func(t *testing.T, body []byte) {
		b := make([]byte, 4, 4+len(body))
		b = append(b, body...)
		binary.BigEndian.PutUint32(b, crc32.Checksum(body, castagnoli))
		got, err := DecodeRecord(1, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		if len(got.Stream) == 0 || len(got.Type) == 0 {
			t.Fatalf("decoder accepted an empty name: %+v", got)
		}
		again, err := AppendRecord(nil, &got)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted a non-canonical record:\n in %x\nout %x", b, again)
		}
	})
}
