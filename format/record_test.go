package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func sampleEvent() Event {
	return Event{
		Position: 42,
		Stream:   "account-1",
		Version:  7,
		Type:     "Deposited",
		Data:     []byte(`{"amount":500}`),
		Metadata: map[string]string{"correlation-id": "c1", "causation-id": "x"},
		ID:       uuid.Must(uuid.NewV7()).String(),
		Time:     time.Unix(1700000000, 123456789).UTC(),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	cases := map[string]func(*Event){
		"full":        func(*Event) {},
		"no metadata": func(e *Event) { e.Metadata = nil },
		"no data":     func(e *Event) { e.Data = nil },
		"binary data": func(e *Event) { e.Data = []byte{0, 1, 2, 255} },
		"long names": func(e *Event) {
			e.Stream = strings.Repeat("s", 255)
			e.Type = strings.Repeat("t", 255)
		},
		"unicode": func(e *Event) { e.Stream = "kasse-ü-東京" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			ev := sampleEvent()
			mutate(&ev)
			b, err := AppendRecord(nil, &ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRecord(ev.Position, b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", got, ev)
			}
		})
	}
}

func TestRecordAppendsToBuffer(t *testing.T) {
	ev := sampleEvent()
	prefix := []byte("prefix")
	b, err := AppendRecord(prefix, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:6]) != "prefix" {
		t.Fatalf("prefix overwritten: %q", b[:6])
	}
	if _, err := DecodeRecord(1, b[6:]); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRecordDetectsEveryFlippedBit(t *testing.T) {
	ev := sampleEvent()
	b, _ := AppendRecord(nil, &ev)
	for i := range len(b) * 8 {
		c := append([]byte(nil), b...)
		c[i/8] ^= 1 << (i % 8)
		_, err := DecodeRecord(9, c)
		var ce *CorruptError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: got err %v, want a CorruptError", i, err)
		}
		if ce.Position != 9 {
			t.Fatalf("corruption reported at %d, want 9", ce.Position)
		}
	}
}

func TestDecodeRecordTruncated(t *testing.T) {
	ev := sampleEvent()
	b, _ := AppendRecord(nil, &ev)
	for n := range len(b) {
		if _, err := DecodeRecord(1, b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: got %v, want ErrCorrupt", n, err)
		}
	}
}

func TestAppendRecordRejectsBadNames(t *testing.T) {
	ev := sampleEvent()
	ev.Stream = ""
	if _, err := AppendRecord(nil, &ev); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty stream: got %v", err)
	}
	ev = sampleEvent()
	ev.ID = "not-a-uuid"
	if _, err := AppendRecord(nil, &ev); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad id: got %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		ev   EventData
		ok   bool
	}{
		{"ok", EventData{Stream: "a", Type: "T", Data: []byte("{}")}, true},
		{"empty stream", EventData{Type: "T"}, false},
		{"long stream", EventData{Stream: strings.Repeat("a", 256), Type: "T"}, false},
		{"max stream", EventData{Stream: strings.Repeat("a", 255), Type: "T"}, true},
		{"newline in stream", EventData{Stream: "a\nb", Type: "T"}, false},
		{"nul in stream", EventData{Stream: "a\x00b", Type: "T"}, false},
		{"bad utf8", EventData{Stream: "a\xffb", Type: "T"}, false},
		{"empty type", EventData{Stream: "a"}, false},
		{"long type", EventData{Stream: "a", Type: strings.Repeat("t", 256)}, false},
		{"too big", EventData{Stream: "a", Type: "T", Data: make([]byte, 11)}, false},
		{"metadata counts", EventData{Stream: "a", Type: "T", Data: make([]byte, 5), Metadata: map[string]string{"k": "12345"}}, false},
		{"empty metadata key", EventData{Stream: "a", Type: "T", Metadata: map[string]string{"": "v"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateEventData(&tt.ev, 10)
			if tt.ok && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !tt.ok {
				var ie *InvalidError
				if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %v, want an InvalidError", err)
				}
			}
		})
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	ev := sampleEvent()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendRecord(buf[:0], &ev)
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	ev := sampleEvent()
	rec, _ := AppendRecord(nil, &ev)
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := DecodeRecord(1, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeRecordRejectsNonCanonical: each event has exactly one
// encoding; an overlong length or unsorted metadata is not ours.
func TestDecodeRecordRejectsNonCanonical(t *testing.T) {
	reseal := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
		return b
	}
	ev := sampleEvent()
	ev.Metadata = nil
	ev.Data = []byte("x")
	rec, _ := AppendRecord(nil, &ev)
	// The payload length 0x01 written as the overlong 0x81 0x00.
	overlong := append(append([]byte(nil), rec[:len(rec)-2]...), 0x81, 0x00, 'x')
	if _, err := DecodeRecord(1, reseal(overlong)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("overlong varint accepted: %v", err)
	}
	ev.Metadata = map[string]string{"a": "1", "b": "2"}
	rec, _ = AppendRecord(nil, &ev)
	i := bytes.Index(rec, []byte{1, 'a', 1, '1', 1, 'b', 1, '2'})
	swapped := append([]byte(nil), rec...)
	copy(swapped[i:], []byte{1, 'b', 1, '2', 1, 'a', 1, '1'})
	if _, err := DecodeRecord(1, reseal(swapped)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unsorted metadata accepted: %v", err)
	}
}
