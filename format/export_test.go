package format

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

const testStoreID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

func sampleEvents(from uint64, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		ev := sampleEvent()
		ev.Position = from + uint64(i)
		ev.Version = uint64(i + 1)
		ev.Data = fmt.Appendf(nil, `{"i":%d}`, i)
		out[i] = ev
	}
	return out
}

func writeExport(t testing.TB, from uint64, frames ...[]Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	x, err := NewExportWriter(&buf, ExportHeader{StoreID: testStoreID, From: from}, FrameCodecZstd)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := x.Write(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readExport(b []byte) ([]Event, error) {
	x, err := NewExportReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []Event
	for {
		evs, err := x.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, evs...)
	}
}

func TestExportRoundTrip(t *testing.T) {
	evs := sampleEvents(5, 30)
	b := writeExport(t, 5, evs[:10], evs[10:25], evs[25:])
	got, err := readExport(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatal("events differ after the round trip")
	}
	if got, err := readExport(writeExport(t, 1)); err != nil || len(got) != 0 {
		t.Fatalf("empty export: %v %v", got, err)
	}
}

func TestExportDamageIsLocated(t *testing.T) {
	evs := sampleEvents(1, 30)
	good := writeExport(t, 1, evs[:10], evs[10:20], evs[20:])
	second := ExportHeaderSize + len(mustFrame(t, evs[:10], FrameCodecZstd)) + 4
	for _, tt := range []struct {
		name  string
		mod   func([]byte) []byte
		frame int
		want  string
	}{
		{"flipped byte in frame 2", func(b []byte) []byte { b[second+FrameHeaderSize+3] ^= 1; return b }, 2, "frame 2 (from position 11)"},
		{"flipped zstd header byte", func(b []byte) []byte { b[second+FrameHeaderSize+5] ^= 0x10; return b }, 2, "frame 2 (from position 11): checksum mismatch"},
		{"flipped header", func(b []byte) []byte { b[10] ^= 1; return b }, 0, "header"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-ExportTrailerSize-5] }, 3, "frame 3"},
		{"no trailer", func(b []byte) []byte { return b[:len(b)-ExportTrailerSize] }, 4, "ends before its trailer"},
		{"flipped trailer", func(b []byte) []byte { b[len(b)-10] ^= 1; return b }, -1, "trailer"},
		{"trailing bytes", func(b []byte) []byte { return append(b, 0) }, -1, "follow the trailer"},
		{"not an export", func([]byte) []byte { return []byte(strings.Repeat("x", 100)) }, 0, "not an evstore export"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readExport(tt.mod(bytes.Clone(good)))
			ee, ok := errors.AsType[*ExportError](err)
			if !ok || !errors.Is(err, ErrCorrupt) || ee.Frame != tt.frame || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want frame %d and %q", err, tt.frame, tt.want)
			}
		})
	}
}

// FuzzExportReader feeds arbitrary bytes to the export reader: it must
// never panic, report failures as ErrCorrupt, and return only events with
// consecutive positions from the header's first position.
func FuzzExportReader(f *testing.F) {
	evs := sampleEvents(1, 4)
	f.Add(writeExport(f, 1, evs[:2], evs[2:]))
	f.Add(writeExport(f, 7))
	f.Add([]byte("EVEX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := NewExportReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		next := x.Header().From
		for {
			evs, err := x.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v is not ErrCorrupt", err)
				}
				return
			}
			for _, ev := range evs {
				if ev.Position != next {
					t.Fatalf("position %d, want %d", ev.Position, next)
				}
				next++
			}
		}
	})
}

func TestEventJSON(t *testing.T) {
	base := sampleEvent()
	for name, data := range map[string][]byte{
		"json":   []byte(`{"amount":500,"note":"a<b"}`),
		"text":   []byte("plain text"),
		"binary": {0xff, 0x00, 0x01},
		"empty":  {},
		"none":   nil,
	} {
		t.Run(name, func(t *testing.T) {
			ev := base
			ev.Data = data
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(ev); err != nil {
				t.Fatal(err)
			}
			b := buf.Bytes()
			var back Event
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, ev) {
				t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, back, ev)
			}
		})
	}
	ev := base
	ev.Metadata = nil
	b, _ := json.Marshal(ev)
	if !bytes.Contains(b, []byte(`"metadata":{}`)) || !bytes.Contains(b, []byte(`"data":{"amount":500}`)) {
		t.Fatalf("json form %s", b)
	}
	for _, bad := range []string{`{"data":1,"data_encoding":"base64"}`, `{"data":"!","data_encoding":"base64"}`, `{"data":"x","data_encoding":"rot13"}`} {
		if err := json.Unmarshal([]byte(bad), &ev); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestExportEveryByteIsChecked flips each byte of an export in turn: every
// one must be refused.
func TestExportEveryByteIsChecked(t *testing.T) {
	evs := sampleEvents(1, 6)
	good := writeExport(t, 1, evs[:3], evs[3:])
	for i := range good {
		for _, bit := range []byte{0x01, 0x10, 0x80} {
			b := bytes.Clone(good)
			b[i] ^= bit
			if _, err := readExport(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip %02x at byte %d of %d not detected: %v", bit, i, len(good), err)
			}
		}
	}
}

// FuzzEventJSON feeds arbitrary bytes to Event.UnmarshalJSON: it must never
// panic, and whatever it accepts must come back the same through
// MarshalJSON.
func FuzzEventJSON(f *testing.F) {
	for _, data := range [][]byte{[]byte(`{"a":1}`), []byte("text"), {0xff, 0}, nil} {
		ev := sampleEvent()
		ev.Data = data
		b, _ := ev.MarshalJSON()
		f.Add(b)
	}
	f.Add([]byte(`{"data":"x","data_encoding":"base64"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if err := ev.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("accepted JSON does not marshal: %v", err)
		}
		var back Event
		if err := back.UnmarshalJSON(out); err != nil {
			t.Fatalf("marshalled JSON %s does not unmarshal: %v", out, err)
		}
		again, _ := back.MarshalJSON()
		if !bytes.Equal(out, again) {
			t.Fatalf("not stable:\n%s\n%s", out, again)
		}
	})
}
