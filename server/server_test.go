package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

func shortDirB(b *testing.B) string {
	d, err := os.MkdirTemp("", "evs")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// shortDir is a temporary directory with a path short enough for a Unix
// socket (t.TempDir can exceed the ~100 byte limit).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "evs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// serve starts a server on a fresh store and returns its client; the
// server stops and the store closes at cleanup.
func serve(t *testing.T, opts Options) (*local.Store, *Server, *Client) {
	t.Helper()
	store, err := local.Open(filepath.Join(shortDir(t), "s.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(store, opts)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		store.Close()
	})
	var c *Client
	if srv.Socket() != "" {
		if c, err = DialSocket(ctx, srv.Socket()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
	}
	return store, srv, c
}

func TestExecAppendReadThroughSocket(t *testing.T) {
	store, srv, c := serve(t, Options{})
	ctx := context.Background()
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(srv.Socket())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
		}
	}
	if _, err := c.Exec(ctx, "bank.open", json.RawMessage(`{"account":"a","owner":"A"}`), ""); err != nil {
		t.Fatal(err)
	}
	res, err := c.Exec(ctx, "bank.deposit", json.RawMessage(`{"account":"a","amount":500}`), "k1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Position != 2 || len(res.Events) != 1 || res.Events[0].Stream != "account-a" {
		t.Fatalf("exec: %+v", res)
	}
	again, err := c.Exec(ctx, "bank.deposit", json.RawMessage(`{"account":"a","amount":500}`), "k1")
	if err != nil || !again.Duplicate || again.Position != 2 {
		t.Fatalf("duplicate: %+v, %v", again, err)
	}
	// A domain refusal keeps its words and writes nothing.
	_, err = c.Exec(ctx, "bank.withdraw", json.RawMessage(`{"account":"a","amount":9000}`), "")
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || !errors.Is(err, commands.ErrInsufficientFunds) && !strings.Contains(err.Error(), "insufficient funds") {
		t.Fatalf("withdraw too much: %v", err)
	}
	if _, err := c.Exec(ctx, "bank.deposit", json.RawMessage(`{"account":"a","amount":"x"}`), ""); !errors.Is(err, commands.ErrBadArgs) {
		t.Fatalf("bad args: %v", err)
	}
	if _, err := c.Exec(ctx, "nope", nil, ""); !errors.Is(err, commands.ErrUnknownCommand) {
		t.Fatalf("unknown command: %v", err)
	}

	// Append with expectations: the first succeeds, the stale one gets 409
	// with the actual version.
	r, err := c.Append(ctx, AppendRequest{
		Events: []NewEvent{{Stream: "order-1", Type: "Placed", Data: json.RawMessage(`{"n": 1}`)}, {Stream: "order/2", Type: "Raw", Data: json.RawMessage(`"\u0000x"`), DataEncoding: "utf-8"}},
		Expect: []ExpectVersion{{Stream: "order-1", Version: 0}},
	})
	if err != nil || r.Position != 4 {
		t.Fatalf("append: %+v, %v", r, err)
	}
	_, err = c.Append(ctx, AppendRequest{Events: []NewEvent{{Stream: "order-1", Type: "Placed"}}, Expect: []ExpectVersion{{Stream: "order-1", Version: 0}}})
	var conflict *local.ConflictError
	if !errors.As(err, &conflict) || conflict.Actual != 1 || conflict.Expected != 0 {
		t.Fatalf("stale append: %v", err)
	}
	if store.Head() != 4 {
		t.Fatalf("head %d after refusals, want 4", store.Head())
	}

	// Reads come back as the store holds them, across pages.
	for i := range 25 {
		if _, err := store.Append(ctx, []format.EventData{{Stream: "order/2", Type: "T", Data: fmt.Appendf(nil, `{"i":%d}`, i)}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []format.Event
	for ev, err := range c.ReadStream(ctx, "order/2", 1) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if len(got) != 26 || string(got[0].Data) != "\x00x" || got[25].Version != 26 {
		t.Fatalf("read order/2: %d events, first %q", len(got), got[0].Data)
	}
	var head uint64
	n := 0
	for ev, err := range c.ReadAll(ctx, 2, &head) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Position != uint64(n)+2 {
			t.Fatalf("log event %d at position %d", n, ev.Position)
		}
		n++
	}
	if n != 28 || head != 29 {
		t.Fatalf("log from 2: %d events, head %d; want 28, 29", n, head)
	}
	st, err := c.Status(ctx)
	if err != nil || st.StoreID != store.ID() || st.Head != 29 {
		t.Fatalf("status %+v, %v", st, err)
	}
	cmds, err := c.Commands(ctx)
	if err != nil || len(cmds) != len(commands.Builtin().All()) {
		t.Fatalf("commands %v, %v", cmds, err)
	}
}

// TestPagesAreLimited: a reader gets MaxPage events per answer and follows
// next.
func TestPagesAreLimited(t *testing.T) {
	store, _, c := serve(t, Options{MaxPage: 7})
	ctx := context.Background()
	for range 20 {
		store.Append(ctx, []format.EventData{{Stream: "s", Type: "T"}})
	}
	var p Page
	if err := c.do(ctx, http.MethodGet, "/v1/log?from=3", nil, nil, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 7 || p.Next != 10 || p.Head != 20 {
		t.Fatalf("page: %d events, next %d, head %d", len(p.Events), p.Next, p.Head)
	}
	n := 0
	for _, err := range c.ReadAll(ctx, 1, nil) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("read %d of 20 events", n)
	}
}

// TestRefusals is acceptance item 6: each bad request gets a clear 4xx
// with a JSON error, and nothing is written.
func TestRefusals(t *testing.T) {
	store, srv, _ := serve(t, Options{Socket: "-", TCPAddr: "127.0.0.1:0", Token: "s3cret", MaxBodyBytes: 1 << 10})
	base := "http://" + srv.Addrs()[0].String()
	big := `{"events":[{"stream":"s","type":"T","data":"` + strings.Repeat("x", 2<<10) + `"}]}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code, says                      string
	}{
		{"no token", "POST", "/v1/append", "", `{"events":[{"stream":"s","type":"T"}]}`, 401, "unauthorized", "missing token"},
		{"wrong token", "POST", "/v1/append", "guess", `{"events":[{"stream":"s","type":"T"}]}`, 401, "unauthorized", "wrong token"},
		{"oversized body", "POST", "/v1/append", "s3cret", big, 413, "too_large", "exceeds 1024 bytes"},
		{"truncated JSON", "POST", "/v1/append", "s3cret", `{"events":[{"stream":"s","ty`, 400, "bad_request", "truncated JSON"},
		{"truncated args", "POST", "/v1/commands/bank.deposit", "s3cret", `{"account":"a","amo`, 400, "bad_request", "truncated JSON"},
		{"unknown command", "POST", "/v1/commands/bank.rob", "s3cret", `{}`, 404, "unknown_command", `unknown command "bank.rob"`},
		{"unknown field", "POST", "/v1/append", "s3cret", `{"events":[{"stream":"s","type":"T"}],"expcet":[]}`, 400, "bad_request", `unknown field "expcet"`},
		{"no events", "POST", "/v1/append", "s3cret", `{}`, 400, "bad_request", `"events" is empty`},
		{"bad stream", "POST", "/v1/append", "s3cret", `{"events":[{"stream":"","type":"T"}]}`, 400, "invalid", "stream"},
		{"bad args", "POST", "/v1/commands/bank.deposit", "s3cret", `{"account":"a","amount":"10"}`, 400, "bad_args", "amount"},
		{"args not an object", "POST", "/v1/commands/bank.deposit", "s3cret", `[1]`, 400, "bad_request", "JSON object"},
		{"bad from", "GET", "/v1/log?from=-1", "s3cret", ``, 400, "bad_request", "from"},
		{"bad limit", "GET", "/v1/log?limit=0", "s3cret", ``, 400, "bad_request", "limit"},
		{"bad Last-Event-ID", "GET", "/v1/subscribe", "s3cret", ``, 400, "bad_request", "Last-Event-ID"},
		{"no such path", "GET", "/v2/x", "s3cret", ``, 404, "not_found", "no such endpoint"},
		{"wrong method", "DELETE", "/v1/log", "s3cret", ``, 405, "method_not_allowed", "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.name == "bad Last-Event-ID" {
				req.Header.Set("Last-Event-ID", "x")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("not a JSON error body: %v", err)
			}
			if resp.StatusCode != tc.status || body.Code != tc.code || !strings.Contains(body.Error, tc.says) {
				t.Fatalf("got %d %q %q; want %d %q containing %q", resp.StatusCode, body.Code, body.Error, tc.status, tc.code, tc.says)
			}
		})
	}
	if store.Head() != 0 {
		t.Fatalf("refused requests wrote %d events", store.Head())
	}
}

func TestSocketPathTooLong(t *testing.T) {
	dir := filepath.Join(shortDir(t), strings.Repeat("d", 100))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := local.Open(filepath.Join(dir, "s.db"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := Listen(store, Options{}); err == nil || !strings.Contains(err.Error(), "set Options.Socket") {
		t.Fatalf("long socket path: %v", err)
	}
}

func TestTCPNeedsToken(t *testing.T) {
	store, err := local.Open(filepath.Join(shortDir(t), "s.db"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := Listen(store, Options{Socket: "-", TCPAddr: "127.0.0.1:0"}); !errors.Is(err, ErrNoToken) {
		t.Fatalf("TCP without a token: %v", err)
	}
}

// TestStaleSocket: a socket file nobody serves is no owner for a client,
// and the next owner replaces it.
func TestStaleSocket(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "s.db.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, as after a SIGKILL
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file should remain: %v", err)
	}
	if _, err := DialSocket(context.Background(), path); !errors.Is(err, ErrNoOwner) {
		t.Fatalf("dial a stale socket: %v, want ErrNoOwner", err)
	}
	if _, err := DialSocket(context.Background(), filepath.Join(dir, "none.sock")); !errors.Is(err, ErrNoOwner) {
		t.Fatalf("dial a missing socket: %v, want ErrNoOwner", err)
	}
	store, err := local.Open(filepath.Join(dir, "s.db"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := Listen(store, Options{})
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := DialSocket(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	c.Close()
	cancel()
	<-done
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after a clean stop: %v", err)
	}
}

// TestSubscribe follows the log over SSE: catch-up, then live, then a
// resume with Last-Event-ID after the server stopped, with no event
// missed or repeated.
func TestSubscribe(t *testing.T) {
	store, srv, _ := serve(t, Options{Socket: "-", TCPAddr: "127.0.0.1:0", Token: "t"})
	ctx := context.Background()
	for range 3 {
		store.Append(ctx, []format.EventData{{Stream: "s", Type: "T"}})
	}
	base := "http://" + srv.Addrs()[0].String()
	open := func(lastID string) (*bufio.Reader, func()) {
		req, _ := http.NewRequest("GET", base+"/v1/subscribe?from=2", nil)
		req.Header.Set("Authorization", "Bearer t")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("subscribe: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
		return bufio.NewReader(resp.Body), func() { resp.Body.Close() }
	}
	next := func(r *bufio.Reader) (id string, ev Event) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
					t.Fatal(err)
				}
				return id, ev
			}
		}
	}
	r, stop := open("")
	for want := uint64(2); want <= 3; want++ {
		if id, ev := next(r); ev.Position != want || id != fmt.Sprint(want) {
			t.Fatalf("catch-up: id %s position %d, want %d", id, ev.Position, want)
		}
	}
	store.Append(ctx, []format.EventData{{Stream: "s", Type: "Live"}})
	if _, ev := next(r); ev.Position != 4 || ev.Type != "Live" {
		t.Fatalf("live: %+v", ev)
	}
	stop()
	store.Append(ctx, []format.EventData{{Stream: "s", Type: "Missed"}})
	r, stop = open("4")
	defer stop()
	if _, ev := next(r); ev.Position != 5 || ev.Type != "Missed" {
		t.Fatalf("resume after 4: %+v", ev)
	}
}

// TestShutdownEndsSubscribers: Serve returns promptly although a
// subscriber never ends its request.
func TestShutdownEndsSubscribers(t *testing.T) {
	store, err := local.Open(filepath.Join(shortDir(t), "s.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := Listen(store, Options{ShutdownWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := DialSocket(ctx, srv.Socket())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://evstore/v1/subscribe", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // deadlock guard only
		t.Fatal("Serve did not return with a subscriber connected")
	}
	io.Copy(io.Discard, resp.Body) // ends: the server closed the stream
	resp.Body.Close()
}

// TestClientSubscribe follows the log with the Go client: catch-up, live,
// and an error wrapping ErrUnreachable when the server stops.
func TestClientSubscribe(t *testing.T) {
	store, err := local.Open(filepath.Join(shortDir(t), "s.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	store.Append(ctx, []format.EventData{{Stream: "s", Type: "Old", Data: []byte{0xff}}})
	srv, err := Listen(store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	c, err := DialSocket(ctx, srv.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []format.Event
	for ev, err := range c.Subscribe(ctx, 1) {
		if err != nil {
			if !errors.Is(err, ErrUnreachable) || len(got) != 2 {
				t.Fatalf("after %d events: %v", len(got), err)
			}
			break
		}
		got = append(got, ev)
		switch len(got) {
		case 1:
			if ev.Type != "Old" || string(ev.Data) != "\xff" {
				t.Fatalf("catch-up: %+v", ev)
			}
			store.Append(ctx, []format.EventData{{Stream: "s", Type: "New"}})
		case 2:
			if ev.Type != "New" || ev.Position != 2 {
				t.Fatalf("live: %+v", ev)
			}
			stop() // the server goes away under the subscriber
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGoneOwnerIsNoOwner: a call whose connection is refused because the
// server stopped was not sent, and says so with ErrNoOwner.
func TestGoneOwnerIsNoOwner(t *testing.T) {
	store, err := local.Open(filepath.Join(shortDir(t), "s.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv, err := Listen(store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c, err := DialSocket(ctx, srv.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	<-done
	if _, err := c.Exec(context.Background(), "counter.increment", json.RawMessage(`{"counter":"c"}`), ""); !errors.Is(err, ErrNoOwner) {
		t.Fatalf("exec after the server stopped: %v, want ErrNoOwner", err)
	}
	if store.Head() != 0 {
		t.Fatal("written")
	}
}

// TestStatsAndStreams: GET /v1/stats answers what the store's Stats does,
// GET /v1/streams lists what its Streams does, across its read chunks, with
// a prefix and a limit.
func TestStatsAndStreams(t *testing.T) {
	store, _, c := serve(t, Options{})
	ctx := context.Background()
	if got := slices.Collect(valuesOrFail(t, c.Streams(ctx, "", 0))); len(got) != 0 {
		t.Fatalf("streams of an empty store: %v", got)
	}
	req := local.Request{}
	for i := range 700 {
		req.Events = append(req.Events, format.EventData{Stream: fmt.Sprintf("s-%04d", i), Type: "T"})
	}
	if _, err := store.Write(ctx, req); err != nil {
		t.Fatal(err)
	}
	want, err := store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(wj) != string(gj) {
		t.Fatalf("stats through the socket %s, from the store %s", gj, wj)
	}
	for _, tc := range []struct {
		prefix string
		limit  uint64
		n      int
	}{{"", 0, 700}, {"s-01", 0, 100}, {"s-0", 650, 650}, {"s-06", 1, 1}, {"t", 0, 0}, {"s-0699", 5, 1}} {
		got := slices.Collect(valuesOrFail(t, c.Streams(ctx, tc.prefix, tc.limit)))
		var want []local.StreamInfo
		for si, err := range store.Streams(tc.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == tc.n {
				break
			}
			want = append(want, si)
		}
		if len(got) != tc.n || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("prefix %q limit %d: %d streams, want %d", tc.prefix, tc.limit, len(got), tc.n)
		}
	}
	for _, q := range []string{"limit=x", "limit=-1", "prefx=s", "prefix=a&prefix=b"} {
		var out any
		err := c.do(ctx, http.MethodGet, "/v1/streams?"+q, nil, nil, &out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Body.Code != "bad_request" {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestStreamsCutShort: a list the server could not finish is an error,
// never a shorter list.
func TestStreamsCutShort(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"streams":[{"stream":"a","version":1,"last_position":1,"last_time":"2026-01-01T00:00:00Z"},`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer ts.Close()
	c := NewClient(ts.URL, "")
	defer c.Close()
	var n int
	var last error
	for _, err := range c.Streams(context.Background(), "", 0) {
		if err != nil {
			last = err
			break
		}
		n++
	}
	if n != 1 || !errors.Is(last, ErrUnreachable) {
		t.Fatalf("%d streams, then %v", n, last)
	}
}

func valuesOrFail[V any](t *testing.T, seq iter.Seq2[V, error]) iter.Seq[V] {
	return func(yield func(V) bool) {
		for v, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			if !yield(v) {
				return
			}
		}
	}
}
