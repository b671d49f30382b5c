package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/evstore/evstore/local"
)

// The seeds are kept in testdata/fuzz/<name>/ as well as here, so that
// `go test` replays them and `-fuzz` starts from them.
var appendSeeds = []string{
	`{"events":[{"stream":"s","type":"T","data":{"a":1}}],"expect":[{"stream":"s","version":0}],"key":"k"}`,
	`{"events":[{"stream":"s","type":"T","data":"aGk=","data_encoding":"base64","metadata":{"m":"v"}}]}`,
	`{"events":[{"stream":"s","type":"T","data":"x","data_encoding":"utf-8"}]}`,
	`{"events":[]}`,
	`{"events":[{"stream":"s","ty`,
	`{"events":[{"stream":"s","type":"T"}],"key":""}`,
	`{"events":[{"stream":"s","type":"T"}]} trailing`,
	`[]`,
	``,
	`{"events":[{"stream":"s","type":"T","data":1e999}]}`,
	`{"events":[{"stream":"s","type":"T","data_encoding":"rot13","data":"x"}]}`,
}

// FuzzDecodeAppend: no body crashes the decoder; whatever it accepts is a
// request whose events carry the data given, compacted.
func FuzzDecodeAppend(f *testing.F) {
	for _, s := range appendSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeAppend(body)
		if err != nil {
			if len(req.Events) != 0 {
				t.Fatal("an error with events")
			}
			return
		}
		if len(req.Events) == 0 {
			t.Fatal("accepted a request without events")
		}
		for _, ev := range req.Events {
			if ev.Data != nil && json.Valid(ev.Data) && !bytes.Equal(bytes.TrimSpace(ev.Data), ev.Data) {
				t.Fatalf("data not compacted: %q", ev.Data)
			}
		}
	})
}

// FuzzDecodeArgs: command arguments are accepted only as a JSON object,
// null, or nothing.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{`{"account":"a","amount":1}`, ``, `null`, `[1]`, `{"a":`, `"x"`, " {} "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		args, err := decodeArgs(body)
		if err != nil {
			return
		}
		if args != nil && !json.Valid(args) {
			t.Fatalf("accepted invalid JSON %q", args)
		}
		if args != nil && args[0] != '{' && string(args) != "null" {
			t.Fatalf("accepted a non-object %q", args)
		}
	})
}

// FuzzStreamsParams: the query of GET /v1/streams either fails with a bad
// request or gives back the prefix as sent and a limit.
func FuzzStreamsParams(f *testing.F) {
	for _, s := range []string{"", "prefix=account-&limit=10", "limit=0", "limit=-1", "limit=x", "prefix=a&prefix=b", "prefx=a", "prefix=%FF%00", "limit=18446744073709551616", "prefix=a%26b%3Dc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // the server drops pairs it cannot parse
		}
		prefix, limit, err := streamsParams(q)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("%q: %v is not a bad request", query, err)
			}
			return
		}
		if prefix != q.Get("prefix") {
			t.Fatalf("%q: prefix %q", query, prefix)
		}
		if q.Get("limit") == "" && limit != 0 {
			t.Fatalf("%q: limit %d without one", query, limit)
		}
	})
}

// FuzzHandler sends arbitrary bodies and query strings through the whole
// handler: the answer is always JSON with a status below 500, and a
// refused request writes nothing.
func FuzzHandler(f *testing.F) {
	for _, s := range appendSeeds {
		f.Add("/v1/append", "", []byte(s))
	}
	f.Add("/v1/commands/bank.open", "", []byte(`{"account":"a","owner":"b"}`))
	f.Add("/v1/commands/bank.deposit", "from=x", []byte(`{"account":"a","amount":"1"}`))
	f.Add("/v1/log", "from=1&limit=99999", []byte(nil))
	f.Add("/v1/streams/a%2Fb", "from=18446744073709551615", []byte(nil))
	f.Add("/v1/streams", "prefix=a&limit=2", []byte(nil))
	f.Add("/v1/streams", "limit=x&y=1", []byte(nil))
	f.Add("/v1/stats", "", []byte(nil))
	store, err := local.Open(filepath.Join(f.TempDir(), "f.db"), local.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	h := Handler(store, Options{MaxBodyBytes: 64 << 10})
	f.Fuzz(func(t *testing.T, path, query string, body []byte) {
		method := http.MethodPost
		if len(body) == 0 {
			method = http.MethodGet
		}
		req, err := http.NewRequestWithContext(context.Background(), method, "http://evstore/", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path, req.URL.RawQuery = path, query
		if path == "" || path[0] != '/' || path == "/v1/subscribe" {
			return // the server never sees such a path; subscribe never ends
		}
		before := store.Head()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s?%s: status %d: %s", method, path, query, rec.Code, rec.Body)
		}
		if rec.Code/100 != 3 && !json.Valid(rec.Body.Bytes()) { // the mux redirects unclean paths
			t.Fatalf("%s %s: answer is not JSON: %q", method, path, rec.Body)
		}
		if rec.Code != http.StatusOK && store.Head() != before {
			t.Fatalf("%s %s: refused with %d but wrote", method, path, rec.Code)
		}
	})
}
