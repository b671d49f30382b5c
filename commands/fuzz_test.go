package commands

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzCheckArgs feeds arbitrary JSON arguments to every built-in command's
// check, which is what the CLI runs on its ARGS-JSON: it must never panic,
// must refuse with ErrBadArgs or a domain error, and must never accept
// text that is not UTF-8 (encoding/json would turn it into U+FFFD).
func FuzzCheckArgs(f *testing.F) {
	for _, seed := range []string{
		`{"stream":"s","type":"T","data":{"x":1},"expect":0}`,
		`{"account":"alice","owner":"Alice"}`,
		`{"account":"a","amount":500}`,
		`{"from":"a","to":"b","amount":1}`,
		`{"counter":"c"}`,
		`{"account":"a","amount":1e30}`,
		`{"stream":"a\udc80","type":"T","data":1}`,
		`{"stream":"\ud83d\ude00","type":"T","data":null}`,
		"{\"stream\":\"a\xff\",\"type\":\"T\",\"data\":1}",
		`[1,2]`, `null`, ``, `{"a":1,"a":2}`,
	} {
		f.Add(seed)
	}
	reg := Builtin()
	f.Fuzz(func(t *testing.T, raw string) {
		for _, s := range reg.All() {
			err := reg.Check(s.Name, json.RawMessage(raw))
			if err == nil {
				if !utf8.ValidString(raw) {
					t.Fatalf("%s accepted arguments that are not UTF-8: %q", s.Name, raw)
				}
				continue
			}
			if !errors.Is(err, ErrBadArgs) && !errors.Is(err, ErrInvalidAmount) && !errors.Is(err, ErrSameAccount) {
				t.Fatalf("%s: error %v wraps no known sentinel", s.Name, err)
			}
		}
	})
}
