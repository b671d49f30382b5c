package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseLine feeds arbitrary lines to the exec -f line parser: it must
// never panic; what it accepts is a UTF-8 JSON object with a non-empty
// command, and a key it accepts decodes to exactly one string.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		`{"command":"bank.open","args":{"account":"a","owner":"A"},"key":"k-1"}`,
		`{"command":"counter.increment","args":{"counter":"c"}}`,
		`{"command":"append","args":null}`,
		`{"command":"x","key":"\udc80"}`,
		`{"command":"x","command":"y"}`,
		"{\"command\":\"a\xff\"}",
		`{"Command":"x"}`, `[]`, `"x"`, ``, `{`, `{"command":""}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		name, args, key, err := parseLine(line)
		if err != nil {
			if name != "" || args != nil || key != "" {
				t.Fatalf("a refused line returned values: %q %q %q", name, args, key)
			}
			return
		}
		if name == "" || !utf8.Valid(line) || !json.Valid(bytes.TrimSpace(line)) {
			t.Fatalf("accepted %q as command %q", line, name)
		}
		if args != nil && !json.Valid(args) {
			t.Fatalf("args %q are not JSON", args)
		}
		if key != "" && (!utf8.ValidString(key) || checkKey(key) != nil) {
			t.Fatalf("accepted key %q", key)
		}
	})
}

// FuzzReadLines checks the exec -f line splitter against a plain split:
// the same lines in the same order, each over-long one reported by size
// and not kept.
func FuzzReadLines(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 2)
	f.Add([]byte(strings.Repeat("x", 5000)+"\ny\n"), 100)
	f.Add([]byte(""), 1)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		if limit < 1 || limit > 1<<16 {
			return
		}
		out := make(chan inputLine)
		done := make(chan struct{})
		defer close(done)
		go readLines(bytes.NewReader(in), limit, out, done)
		want := bytes.SplitAfter(in, []byte("\n"))
		if len(want) > 0 && len(want[len(want)-1]) == 0 {
			want = want[:len(want)-1]
		}
		if len(want) == 0 {
			want = [][]byte{nil}
		}
		for i, w := range want {
			l := <-out
			if l.n != i+1 {
				t.Fatalf("line %d numbered %d", i+1, l.n)
			}
			switch {
			case len(w) > limit:
				if l.size != len(w) || l.text != nil {
					t.Fatalf("line %d (%d bytes, limit %d): size %d, kept %d", i+1, len(w), limit, l.size, len(l.text))
				}
			case !bytes.Equal(l.text, w):
				t.Fatalf("line %d: got %q, want %q", i+1, l.text, w)
			}
			last := i == len(want)-1
			if last != (l.err == io.EOF) && !(last && bytes.HasSuffix(in, []byte("\n"))) {
				t.Fatalf("line %d: err %v, last %v", i+1, l.err, last)
			}
		}
	})
}
