package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// frameEvents returns n deterministic events starting at position first, with
// JSON payloads shaped like real ones (so compression numbers mean something).
func frameEvents(first uint64, n int) []Event {
	evs := make([]Event, n)
	base := time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)
	for i := range evs {
		md := map[string]string{"correlation-id": fmt.Sprintf("c-%d", i/3)}
		if i%4 == 0 {
			md = nil
		}
		evs[i] = Event{
			Position: first + uint64(i),
			Stream:   "account-" + strconv.Itoa(i%17),
			Version:  uint64(i/17 + 1),
			Type:     []string{"Deposited", "Withdrawn", "Opened"}[i%3],
			Data:     fmt.Appendf(nil, `{"amount":%d,"currency":"EUR","note":"payment %d"}`, i*7%1000, i),
			Metadata: md,
			ID:       fmt.Sprintf("0190f5c2-%04x-7000-8000-%012x", i%0x10000, i),
			Time:     base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return evs
}

func mustFrame(t testing.TB, evs []Event, c FrameCodec) []byte {
	t.Helper()
	b, err := EncodeFrame(nil, evs, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	odd := frameEvents(1, 2)
	odd[0].Data, odd[1].Metadata = nil, nil
	odd[1].Data = []byte{0, 0xff, 'x'}
	cases := []struct {
		name string
		evs  []Event
	}{
		{"one", frameEvents(1, 1)},
		{"many", frameEvents(1000, 500)},
		{"odd payloads", odd},
		{"high position", frameEvents(1<<62, 3)},
	}
	for _, tc := range cases {
		for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
			t.Run(tc.name+"/"+c.String(), func(t *testing.T) {
				b := mustFrame(t, tc.evs, c)
				got, err := DecodeFrame(b)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.evs) {
					t.Fatalf("round trip changed the events:\n got %+v\nwant %+v", got, tc.evs)
				}
				h, err := DecodeFrameHeader(b)
				if err != nil {
					t.Fatal(err)
				}
				if h.Codec != c || h.First != tc.evs[0].Position || int(h.Count) != len(tc.evs) || h.Last() != tc.evs[len(tc.evs)-1].Position {
					t.Fatalf("header %+v does not describe the events", h)
				}
			})
		}
	}
}

func TestFrameAppendsToBuffer(t *testing.T) {
	evs := frameEvents(5, 4)
	for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
		b, err := EncodeFrame([]byte("prefix"), evs, c)
		if err != nil {
			t.Fatal(err)
		}
		if string(b[:6]) != "prefix" {
			t.Fatalf("%v: prefix overwritten: %q", c, b[:6])
		}
		if _, err := DecodeFrame(b[6:]); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
	}
}

func TestFrameCompresses(t *testing.T) {
	evs := frameEvents(1, 1000)
	raw, z := mustFrame(t, evs, FrameCodecNone), mustFrame(t, evs, FrameCodecZstd)
	if len(z)*3 > len(raw) {
		t.Fatalf("zstd frame is %d bytes, uncompressed %d: expected at least 3x smaller", len(z), len(raw))
	}
	t.Logf("1000 events: %d bytes uncompressed (%.1f/event), %d with zstd (%.1f/event)",
		len(raw), float64(len(raw))/1000, len(z), float64(len(z))/1000)
}

func TestEncodeFrameRejects(t *testing.T) {
	gap := frameEvents(1, 3)
	gap[2].Position = 9
	dup := frameEvents(4, 2)
	dup[1].Position = 4
	badID := frameEvents(1, 2)
	badID[1].ID = "nope"
	cases := []struct {
		name  string
		evs   []Event
		codec FrameCodec
	}{
		{"empty", nil, FrameCodecZstd},
		{"gap", gap, FrameCodecZstd},
		{"duplicate", dup, FrameCodecNone},
		{"position zero", frameEvents(0, 2), FrameCodecNone},
		{"overflow", frameEvents(^uint64(0), 1), FrameCodecNone},
		{"bad codec", frameEvents(1, 1), FrameCodec(7)},
		{"bad record", badID, FrameCodecZstd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := EncodeFrame(dst, tc.evs, tc.codec)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed on error: %q", out)
			}
		})
	}
}

// rewriteHeader edits header fields of a valid frame and re-signs the header,
// simulating a forged or buggy frame that passes the header checksum.
func rewriteHeader(b []byte, edit func(h []byte)) []byte {
	c := bytes.Clone(b)
	edit(c[:FrameHeaderSize])
	binary.BigEndian.PutUint32(c[32:], crc32.Checksum(c[:32], castagnoli))
	return c
}

func TestDecodeFrameRejects(t *testing.T) {
	evs := frameEvents(10, 20)
	none, z := mustFrame(t, evs, FrameCodecNone), mustFrame(t, evs, FrameCodecZstd)
	zeroBody := rewriteHeader(none, func(h []byte) {})
	zeroBody = append(zeroBody[:FrameHeaderSize], make([]byte, len(none)-FrameHeaderSize)...)
	// A zstd bomb: a small stored body that inflates to far more than the
	// header admits.
	bomb, _ := EncodeFrame(nil, []Event{{Position: 1, Stream: "s", Type: "t", Data: make([]byte, 8<<20)}}, FrameCodecZstd)
	bomb = rewriteHeader(bomb, func(h []byte) { binary.BigEndian.PutUint32(h[20:], 1<<20) })

	cases := map[string][]byte{
		"empty":           nil,
		"short header":    none[:FrameHeaderSize-1],
		"header only":     none[:FrameHeaderSize],
		"bad magic":       rewriteHeader(none, func(h []byte) { h[0] = 'X' }),
		"header checksum": append(append([]byte{}, none[:32]...), append([]byte{1, 2, 3, 4}, none[36:]...)...),
		"version":         rewriteHeader(none, func(h []byte) { h[4] = 2 }),
		"codec":           rewriteHeader(none, func(h []byte) { h[5] = 9 }),
		"flags":           rewriteHeader(none, func(h []byte) { h[7] = 1 }),
		"first zero":      rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint64(h[8:], 0) }),
		"overflow":        rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint64(h[8:], ^uint64(0)-5) }),
		"count zero":      rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint32(h[16:], 0) }),
		"count too high":  rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint32(h[16:], 21) }),
		"count too low":   rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint32(h[16:], 19) }),
		"huge body":       rewriteHeader(z, func(h []byte) { binary.BigEndian.PutUint32(h[20:], MaxFrameBody+1) }),
		"count vs body":   rewriteHeader(z, func(h []byte) { binary.BigEndian.PutUint32(h[16:], 1<<30) }),
		"stored mismatch": rewriteHeader(none, func(h []byte) { binary.BigEndian.PutUint32(h[24:], 5) }),
		"trailing byte":   append(bytes.Clone(z), 0),
		"truncated zstd":  z[:len(z)-1],
		"body checksum":   rewriteHeader(z, func(h []byte) { h[28] ^= 1 }),
		"zeroed body":     zeroBody,
		"zstd bomb":       bomb,
		"garbage zstd":    rewriteHeader(append(bytes.Clone(z[:FrameHeaderSize]), bytes.Repeat([]byte{0x28}, len(z)-FrameHeaderSize)...), func([]byte) {}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeFrame(b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %d events and err %v, want ErrCorrupt", len(got), err)
			}
			if got != nil {
				t.Fatal("events returned with an error")
			}
		})
	}
}

func TestDecodeFrameReportsRecordPosition(t *testing.T) {
	evs := frameEvents(100, 3)
	b := mustFrame(t, evs, FrameCodecNone)
	// Flip a byte inside the second record's payload and fix the body CRC so
	// that the record's own checksum is what catches it.
	second := FrameHeaderSize + 4 + int(binary.BigEndian.Uint32(b[FrameHeaderSize:]))
	b[second+4+50] ^= 0x40
	b = rewriteHeader(b, func(h []byte) {
		binary.BigEndian.PutUint32(h[28:], crc32.Checksum(b[FrameHeaderSize:], castagnoli))
	})
	_, err := DecodeFrame(b)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Position != 101 {
		t.Fatalf("got %v, want the record's CorruptError at position 101", err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%v does not wrap ErrCorrupt", err)
	}
}

// Every flipped bit is either reported or harmless. Uncompressed, each byte
// is covered by a checksum, so every flip is reported; in a zstd body a few
// bits of its frame header are ignored by the decompressor (an unused flag,
// the window size when the content size is known), and those flips must
// decode to exactly the original events.
func TestDecodeFrameDetectsEveryFlippedBit(t *testing.T) {
	for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
		evs := frameEvents(3, 2)
		b := mustFrame(t, evs, c)
		harmless := 0
		for i := range len(b) * 8 {
			m := bytes.Clone(b)
			m[i/8] ^= 1 << (i % 8)
			got, err := DecodeFrame(m)
			if errors.Is(err, ErrCorrupt) {
				continue
			}
			if c == FrameCodecNone || err != nil || !reflect.DeepEqual(got, evs) {
				t.Fatalf("%v: bit %d flipped: got %v, want ErrCorrupt", c, i, err)
			}
			if i/8 >= FrameHeaderSize+6 {
				t.Fatalf("%v: flipped bit %d outside the zstd frame header went unnoticed", c, i)
			}
			harmless++
		}
		t.Logf("%v: %d of %d flipped bits were harmless", c, harmless, len(b)*8)
	}
}

func TestDecodeFrameTruncated(t *testing.T) {
	for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
		b := mustFrame(t, frameEvents(3, 4), c)
		for n := range len(b) {
			if _, err := DecodeFrame(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v truncated to %d bytes: got %v", c, n, err)
			}
		}
	}
}

func TestParseFrameCodec(t *testing.T) {
	for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
		got, err := ParseFrameCodec(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseFrameCodec(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := ParseFrameCodec("lz4"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("lz4: got %v", err)
	}
}

func TestFrameConcurrentUse(t *testing.T) {
	// The shared zstd coders must be safe for concurrent use (run with -race).
	evs := frameEvents(1, 200)
	done := make(chan error)
	for range 4 {
		go func() {
			for range 20 {
				b, err := EncodeFrame(nil, evs, FrameCodecZstd)
				if err == nil {
					_, err = DecodeFrame(b)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// fixChecksums re-signs the header, and the body too when it is stored
// uncompressed, so the fuzzer reaches the code behind the checksums instead of
// stopping at them.
func fixChecksums(b []byte) []byte {
	if len(b) < FrameHeaderSize {
		return b
	}
	c := bytes.Clone(b)
	if c[5] == byte(FrameCodecNone) {
		binary.BigEndian.PutUint32(c[28:], crc32.Checksum(c[FrameHeaderSize:], castagnoli))
	}
	binary.BigEndian.PutUint32(c[32:], crc32.Checksum(c[:32], castagnoli))
	return c
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame decoder, both as given
// and with their checksums repaired. It must never panic or allocate past its
// bounds, must report failures as ErrCorrupt, and whatever it accepts must
// re-encode to a frame that decodes to the same events. The seed corpus lives
// in testdata/fuzz/FuzzDecodeFrame (regenerate with EVSTORE_WRITE_FRAME_CORPUS=1).
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixChecksums(b)} {
			evs, err := DecodeFrame(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v is not ErrCorrupt", err)
				}
				continue
			}
			for _, c := range []FrameCodec{FrameCodecNone, FrameCodecZstd} {
				again, err := EncodeFrame(nil, evs, c)
				if err != nil {
					t.Fatalf("decoded events do not re-encode: %v", err)
				}
				back, err := DecodeFrame(again)
				if err != nil || !reflect.DeepEqual(back, evs) {
					t.Fatalf("re-encoded frame decodes differently: %v", err)
				}
			}
		}
	})
}

func frameSeeds() [][]byte {
	one, _ := EncodeFrame(nil, frameEvents(1, 1), FrameCodecNone)
	three, _ := EncodeFrame(nil, frameEvents(7, 3), FrameCodecNone)
	z, _ := EncodeFrame(nil, frameEvents(7, 3), FrameCodecZstd)
	zmany, _ := EncodeFrame(nil, frameEvents(100, 40), FrameCodecZstd)
	return [][]byte{
		one, three, z, zmany,
		{},
		three[:FrameHeaderSize],
		append(bytes.Clone(z), 0),
		rewriteHeader(z, func(h []byte) { binary.BigEndian.PutUint32(h[20:], MaxFrameBody) }),
	}
}

// TestWriteFrameSeedCorpus regenerates the committed seed corpus. It is a test
// rather than a tool so the seeds and the encoder can never drift apart
// silently: TestFrameSeedCorpusCurrent fails when they do.
func TestWriteFrameSeedCorpus(t *testing.T) {
	if os.Getenv("EVSTORE_WRITE_FRAME_CORPUS") == "" {
		t.Skip("set EVSTORE_WRITE_FRAME_CORPUS=1 to rewrite testdata/fuzz/FuzzDecodeFrame")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range frameSeeds() {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		if err := os.WriteFile(name, corpusFile(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func corpusFile(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

func TestFrameSeedCorpusCurrent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame")
	for i, s := range frameSeeds() {
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v (regenerate with EVSTORE_WRITE_FRAME_CORPUS=1)", err)
		}
		if !bytes.Equal(got, corpusFile(s)) {
			t.Fatalf("%s is stale (regenerate with EVSTORE_WRITE_FRAME_CORPUS=1 go test -run TestWriteFrameSeedCorpus ./format/)", name)
		}
	}
}

func benchFrame(b *testing.B, c FrameCodec, n int) {
	evs := frameEvents(1, n)
	buf := mustFrame(b, evs, c)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.ReportMetric(float64(len(buf))/float64(n), "bytes/event")
		var err error
		for b.Loop() {
			if buf, err = EncodeFrame(buf[:0], evs, c); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeFrame(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "events/s")
	})
}

func BenchmarkFrameNone1000(b *testing.B) { benchFrame(b, FrameCodecNone, 1000) }
func BenchmarkFrameZstd1000(b *testing.B) { benchFrame(b, FrameCodecZstd, 1000) }
func BenchmarkFrameZstd10000(b *testing.B) {
	benchFrame(b, FrameCodecZstd, 10000)
}
