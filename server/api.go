package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// api holds what the handlers share.
type api struct {
	store   *local.Store
	opts    Options
	closing <-chan struct{} // nil: never
	subs    chan struct{}   // a slot per concurrent subscriber
}

func handler(store *local.Store, opts Options, needToken bool, closing <-chan struct{}) http.Handler {
	a := &api{store: store, opts: opts, closing: closing, subs: make(chan struct{}, opts.MaxSubscribers)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", a.timed(a.health))
	mux.HandleFunc("GET /v1/status", a.timed(a.status))
	mux.HandleFunc("GET /v1/stats", a.timed(a.stats))
	mux.HandleFunc("GET /v1/streams", a.timed(a.listStreams))
	mux.HandleFunc("GET /v1/commands", a.timed(a.commandList))
	mux.HandleFunc("POST /v1/commands/{name}", a.timed(a.runCommand))
	mux.HandleFunc("POST /v1/append", a.timed(a.appendEvents))
	mux.HandleFunc("GET /v1/streams/{stream...}", a.timed(a.readStream))
	mux.HandleFunc("GET /v1/log", a.timed(a.readLog))
	mux.HandleFunc("GET /v1/subscribe", a.subscribe)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The catch-all also gets known paths with the wrong method.
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && m != r.Method {
				w.Header().Set("Allow", m)
				a.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s: use %s (see docs/api.md)", r.Method, r.URL.Path, m))
				return
			}
		}
		a.fail(w, r, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if needToken && !checkToken(r, opts.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="evstore"`)
			msg := "missing token: send the header 'Authorization: Bearer TOKEN'"
			if r.Header.Get("Authorization") != "" {
				msg = "wrong token: send the token the server was started with as 'Authorization: Bearer TOKEN'"
			}
			a.fail(w, r, http.StatusUnauthorized, "unauthorized", msg)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, opts.MaxBodyBytes)
		mux.ServeHTTP(w, r)
	})
}

// timed gives a request the server's deadline.
func (a *api) timed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.opts.RequestTimeout)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed","code":"internal"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	a.failBody(w, r, status, ErrorBody{Error: msg, Code: code})
}

func (a *api) failBody(w http.ResponseWriter, r *http.Request, status int, body ErrorBody) {
	if status >= 500 {
		a.opts.Logger.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", body.Error)
	} else {
		a.opts.Logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "error", body.Error)
	}
	writeJSON(w, status, body)
}

// failErr answers err with the status and code that fit it.
func (a *api) failErr(w http.ResponseWriter, r *http.Request, err error) {
	body := ErrorBody{Error: strings.TrimPrefix(err.Error(), errBadRequest.Error()+": ")}
	status := http.StatusInternalServerError
	var conflict *local.ConflictError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		status, body.Code = http.StatusRequestEntityTooLarge, "too_large"
		body.Error = fmt.Sprintf("request body exceeds %d bytes: send less per request", tooBig.Limit)
	case errors.Is(err, errBadRequest):
		status, body.Code = http.StatusBadRequest, "bad_request"
	case errors.Is(err, commands.ErrUnknownCommand):
		status, body.Code = http.StatusNotFound, "unknown_command"
	case errors.Is(err, commands.ErrBadArgs):
		status, body.Code = http.StatusBadRequest, "bad_args"
	case errors.Is(err, format.ErrInvalid):
		status, body.Code = http.StatusBadRequest, "invalid"
	case errors.As(err, &conflict):
		status, body.Code = http.StatusConflict, "conflict"
		body.Stream, body.Expected, body.Actual = conflict.Stream, &conflict.Expected, &conflict.Actual
	case errors.Is(err, local.ErrConflict):
		status, body.Code = http.StatusConflict, "conflict"
	case errors.Is(err, context.DeadlineExceeded):
		status, body.Code = http.StatusServiceUnavailable, "timeout"
		body.Error = "the request did not finish within the server's time limit; nothing was written unless a retry with the same key says so"
	case errors.Is(err, context.Canceled):
		status, body.Code = http.StatusServiceUnavailable, "canceled"
	case errors.Is(err, local.ErrClosed):
		status, body.Code = http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, local.ErrWriteFailed), errors.Is(err, local.ErrCorruptStore), errors.Is(err, format.ErrCorrupt):
		body.Code = "store_failed"
	default:
		// A command's own refusal (insufficient funds, an account that is
		// not open): the request was understood and declined.
		status, body.Code = http.StatusUnprocessableEntity, "refused"
	}
	a.failBody(w, r, status, body)
}

// readBody reads the whole (capped) body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, err
		}
		return nil, badRequest("reading the body: %v", err)
	}
	return b, nil
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "head": a.store.Head()})
}

// StatusBody is the answer to GET /v1/status.
type StatusBody struct {
	StoreID string         `json:"store_id"`
	Head    uint64         `json:"head"`
	Path    string         `json:"path"`
	Created time.Time      `json:"created"`
	Extra   map[string]any `json:"extra,omitempty"` // Options.Status
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	body := StatusBody{StoreID: a.store.ID(), Head: a.store.Head(), Path: a.store.Path(), Created: a.store.Created()}
	if a.opts.Status != nil {
		body.Extra = a.opts.Status(r.Context())
	}
	writeJSON(w, http.StatusOK, body)
}

// stats answers with the store's counts and sizes, as [local.Store.Stats]
// gives them: the fields of 'evstore stats --json'.
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	st, err := a.store.Stats()
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// streamsParams reads the query of GET /v1/streams: a name prefix (any
// string; "" for all) and a limit (0 or absent for all).
func streamsParams(q url.Values) (prefix string, limit uint64, err error) {
	for k, v := range q {
		if k != "prefix" && k != "limit" {
			return "", 0, badRequest("unknown parameter %q: GET /v1/streams takes prefix and limit", k)
		}
		if len(v) > 1 {
			return "", 0, badRequest("%s is given %d times: give it once", k, len(v))
		}
	}
	limit, err = parseUint("limit", q.Get("limit"), 0)
	return q.Get("prefix"), limit, err
}

// listStreams answers {"streams": [...]} in name order. The list is
// written as it is read, so that a store with millions of streams needs
// no page state and no memory for the whole answer; a failure after the
// first bytes cuts the connection, so that a client never takes a partial
// list for a whole one.
func (a *api) listStreams(w http.ResponseWriter, r *http.Request) {
	prefix, limit, err := streamsParams(r.URL.Query())
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	next, stop := iter.Pull2(a.store.Streams(prefix))
	defer stop()
	si, err, ok := next()
	if err == nil {
		err = r.Context().Err()
	}
	if err != nil {
		// Nothing sent yet: the error gets its status.
		a.failErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"streams":[`)
	for n := uint64(1); ok; n++ {
		if n > 1 {
			io.WriteString(w, ",")
		}
		if _, err := w.Write(mustJSON(si)); err != nil || n == limit {
			break // the client went away, or has all it asked for
		}
		if si, err, ok = next(); err == nil {
			err = r.Context().Err()
		}
		if err != nil {
			a.opts.Logger.Warn("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			panic(http.ErrAbortHandler)
		}
	}
	io.WriteString(w, "]}\n")
}

// CommandInfo describes one command in GET /v1/commands.
type CommandInfo struct {
	Name    string `json:"name"`
	Args    string `json:"args"`
	Summary string `json:"summary"`
}

func (a *api) commandList(w http.ResponseWriter, r *http.Request) {
	var out []CommandInfo
	for _, s := range a.opts.Registry.All() {
		out = append(out, CommandInfo{s.Name, s.Args, s.Summary})
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": out})
}

func (a *api) runCommand(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := readBody(r)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	args, err := decodeArgs(body)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	var opts []executor.ExecOption
	if key, ok := r.Header["Idempotency-Key"]; ok {
		if len(key) != 1 || key[0] == "" || len(key[0]) > local.MaxKeyBytes {
			a.fail(w, r, http.StatusBadRequest, "bad_request", fmt.Sprintf("Idempotency-Key must be given once, non-empty, at most %d bytes", local.MaxKeyBytes))
			return
		}
		opts = append(opts, executor.Idempotent(key[0]))
	}
	// No separate Check: Run decodes the arguments before it reads or
	// writes anything, so bad ones fail just as early.
	res, err := a.opts.Registry.Run(r.Context(), a.opts.Executor, name, args, opts...)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AppendResult{Command: name, Position: res.Position, Retries: res.Retries, Duplicate: res.Duplicate, Events: encodeEvents(res.Events)})
}

func (a *api) appendEvents(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	req, err := decodeAppend(body)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	rc, err := a.store.Write(r.Context(), req)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AppendResult{Position: rc.Last(), Retries: rc.Retries, Duplicate: rc.Duplicate, Events: encodeEvents(rc.Events)})
}

// Page is the answer to a read: events, and where the next page starts
// (a version for a stream, a position for the log). Head is the log's
// last position when the read began.
type Page struct {
	Events []Event `json:"events"`
	Next   uint64  `json:"next"`
	Head   uint64  `json:"head"`
}

func (a *api) pageParams(r *http.Request) (from uint64, limit int, err error) {
	q := r.URL.Query()
	if from, err = parseUint("from", q.Get("from"), 1); err != nil {
		return 0, 0, err
	}
	l, err := parseUint("limit", q.Get("limit"), uint64(a.opts.MaxPage))
	if err != nil {
		return 0, 0, err
	}
	if l == 0 || l > MaxPageLimit {
		return 0, 0, badRequest("limit=%d: give 1 to %d", l, MaxPageLimit)
	}
	return max(from, 1), int(l), nil
}

func (a *api) readStream(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	if err := format.ValidateStream(stream); err != nil {
		a.failErr(w, r, err)
		return
	}
	from, limit, err := a.pageParams(r)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.page(w, r, a.store.ReadStream(stream, from), from, limit, func(ev format.Event) uint64 { return ev.Version })
}

func (a *api) readLog(w http.ResponseWriter, r *http.Request) {
	from, limit, err := a.pageParams(r)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.page(w, r, a.store.ReadAll(from), from, limit, func(ev format.Event) uint64 { return ev.Position })
}

func (a *api) page(w http.ResponseWriter, r *http.Request, events func(func(format.Event, error) bool), from uint64, limit int, key func(format.Event) uint64) {
	p := Page{Events: []Event{}, Next: from, Head: a.store.Head()}
	for ev, err := range events {
		if err == nil {
			err = r.Context().Err()
		}
		if err != nil {
			a.failErr(w, r, err)
			return
		}
		p.Events = append(p.Events, ev)
		p.Next = key(ev) + 1
		if len(p.Events) >= limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, p)
}

// subscribe streams the log as Server-Sent Events from ?from= (default 1),
// or from just after Last-Event-ID, then live. Each event's id is its
// position; a comment line every 15 s keeps idle connections open.
func (a *api) subscribe(w http.ResponseWriter, r *http.Request) {
	from, err := parseUint("from", r.URL.Query().Get("from"), 1)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			a.fail(w, r, http.StatusBadRequest, "bad_request", fmt.Sprintf("Last-Event-ID %q is not a position", last))
			return
		}
		from = n + 1
	}
	select {
	case a.subs <- struct{}{}:
		defer func() { <-a.subs }()
	default:
		a.fail(w, r, http.StatusServiceUnavailable, "busy", fmt.Sprintf("%d subscribers already: try again later", cap(a.subs)))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		a.fail(w, r, http.StatusInternalServerError, "internal", "streaming is not supported by this connection")
		return
	}
	rc := http.NewResponseController(w)
	// The server's read deadline would end a long stream: a subscriber
	// sends nothing after its request.
	rc.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-a.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	events := make(chan format.Event, 64)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		for ev, err := range a.store.Subscribe(ctx, from) {
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		var err error
		select {
		case ev, ok := <-events:
			if !ok {
				select {
				case err := <-errc:
					fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(ErrorBody{Error: err.Error(), Code: "unavailable"}))
					flusher.Flush()
				default:
				}
				return
			}
			rc.SetWriteDeadline(time.Now().Add(a.opts.RequestTimeout))
			_, err = fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", ev.Position, mustJSON(ev))
			if err == nil && len(events) == 0 {
				flusher.Flush()
			}
		case <-keepAlive.C:
			rc.SetWriteDeadline(time.Now().Add(a.opts.RequestTimeout))
			_, err = io.WriteString(w, ": keep-alive\n\n")
			flusher.Flush()
		}
		if err != nil {
			return
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := marshal(v)
	return b
}

// marshal is json.Marshal without HTML escaping: "<" in an argument shape
// or an error stays readable for people reading answers in a terminal.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
