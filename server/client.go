package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// ErrNoOwner is returned by [DialSocket] when nothing serves the socket:
// no file there, or a file a dead owner left (connection refused); and by
// a call whose connection was refused because the owner has gone since,
// in which case the request was not sent.
var ErrNoOwner = errors.New("no process serves the database")

// ErrUnreachable wraps a failure to exchange a request with the owner after
// the connection was made: the owner may have stopped or crashed. A
// request that writes may then have been committed or not; retrying it
// with the same idempotency key settles which.
var ErrUnreachable = errors.New("the owner of the database did not answer")

// Client calls the API of a [Server]. It is safe for concurrent use.
type Client struct {
	http  *http.Client
	base  string
	token string
	where string // for messages: the socket path or the address
}

// DialSocket connects to the owner serving the Unix socket at path. It
// fails with [ErrNoOwner] when there is none, which callers take as "open
// the file yourself".
func DialSocket(ctx context.Context, path string) (*Client, error) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	// Probe once so that "nobody there" is known now, not at the first call.
	c, err := dial(ctx, "", "")
	if err != nil {
		if isNoListener(err) {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoOwner, path, err)
		}
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	return &Client{http: &http.Client{Transport: tr}, base: "http://evstore", where: path}, nil
}

// isNoListener reports a socket nobody listens on: absent, refused, or
// (on Windows) a file that is not a live socket.
func isNoListener(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTSOCK) || errors.Is(err, syscall.EINVAL)
}

// notSent reports a failure to connect, after which the request was
// certainly not sent.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && isNoListener(err)
}

// NewClient calls the API at baseURL (e.g. http://127.0.0.1:8080) with a
// bearer token.
func NewClient(baseURL, token string) *Client {
	return &Client{http: &http.Client{}, base: baseURL, token: token, where: baseURL}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Where is the socket path or address the client talks to.
func (c *Client) Where() string { return c.where }

// APIError is an error answer of the server. It unwraps to the library's
// sentinel for its code (commands.ErrBadArgs, local.ErrConflict, …), so a
// caller handles a remote failure as it would a local one; Error() is the
// server's message.
type APIError struct {
	Status int
	Body   ErrorBody
}

func (e *APIError) Error() string { return e.Body.Error }

// Unwrap maps the code to the sentinel the server's error unwrapped to.
func (e *APIError) Unwrap() error {
	switch e.Body.Code {
	case "bad_args":
		return commands.ErrBadArgs
	case "unknown_command":
		return commands.ErrUnknownCommand
	case "invalid":
		return format.ErrInvalid
	case "conflict":
		if e.Body.Expected != nil && e.Body.Actual != nil {
			return &local.ConflictError{Stream: e.Body.Stream, Expected: *e.Body.Expected, Actual: *e.Body.Actual}
		}
		return local.ErrConflict
	case "unavailable", "canceled":
		return local.ErrClosed
	case "store_failed":
		return local.ErrWriteFailed
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body []byte, out any) error {
	resp, err := c.send(ctx, method, path, hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%w (%s): reading the answer: %v", ErrUnreachable, c.where, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

// send makes a request and returns the response of a 200 answer, whose
// body the caller closes; any other answer is an *APIError.
func (c *Client) send(ctx context.Context, method, path string, hdr http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if notSent(err) {
			// The owner went away before this request reached it: nothing
			// happened, and the caller may use the file instead.
			return nil, fmt.Errorf("%w: %s: %v", ErrNoOwner, c.where, err)
		}
		return nil, fmt.Errorf("%w (%s): %v", ErrUnreachable, c.where, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%w (%s): reading the answer: %v", ErrUnreachable, c.where, err)
		}
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, &e.Body) != nil || e.Body.Error == "" {
			e.Body = ErrorBody{Error: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Code: "http"}
		}
		return nil, e
	}
	return resp, nil
}

// Result is what [Client.Exec] and [Client.Append] return, decoded.
type Result struct {
	Position  uint64
	Retries   int
	Duplicate bool
	Events    []format.Event
}

func (r AppendResult) result() Result {
	return Result{Position: r.Position, Retries: r.Retries, Duplicate: r.Duplicate, Events: r.Events}
}

// Exec runs the named command with JSON args; key, if not empty, makes it
// idempotent.
func (c *Client) Exec(ctx context.Context, name string, args json.RawMessage, key string) (Result, error) {
	hdr := http.Header{}
	if key != "" {
		hdr.Set("Idempotency-Key", key)
	}
	if len(args) == 0 {
		args = json.RawMessage("null")
	}
	var ar AppendResult
	if err := c.do(ctx, http.MethodPost, "/v1/commands/"+url.PathEscape(name), hdr, args, &ar); err != nil {
		return Result{}, err
	}
	return ar.result(), nil
}

// Append writes events atomically after checking expect.
func (c *Client) Append(ctx context.Context, req AppendRequest) (Result, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, err
	}
	var ar AppendResult
	if err := c.do(ctx, http.MethodPost, "/v1/append", nil, body, &ar); err != nil {
		return Result{}, err
	}
	return ar.result(), nil
}

// Status is the owner's store id, head and extra fields.
func (c *Client) Status(ctx context.Context) (StatusBody, error) {
	var s StatusBody
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return s, err
}

// Stats is the owner's [local.Store.Stats].
func (c *Client) Stats(ctx context.Context) (local.Stats, error) {
	var st local.Stats
	err := c.do(ctx, http.MethodGet, "/v1/stats", nil, nil, &st)
	return st, err
}

// Streams yields the streams whose names start with prefix, in name
// order, at most limit of them (0: all), as the owner reads them: the
// answer is decoded as it arrives, so a long list takes no memory. An
// answer cut short yields an error wrapping [ErrUnreachable].
func (c *Client) Streams(ctx context.Context, prefix string, limit uint64) iter.Seq2[local.StreamInfo, error] {
	return func(yield func(local.StreamInfo, error) bool) {
		q := url.Values{}
		if prefix != "" {
			q.Set("prefix", prefix)
		}
		if limit > 0 {
			q.Set("limit", strconv.FormatUint(limit, 10))
		}
		path := "/v1/streams"
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		resp, err := c.send(ctx, http.MethodGet, path, nil, nil)
		if err != nil {
			yield(local.StreamInfo{}, err)
			return
		}
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		fail := func(err error) {
			if ctx.Err() != nil {
				err = ctx.Err()
			} else {
				err = fmt.Errorf("%w (%s): the list of streams was cut short: %v", ErrUnreachable, c.where, err)
			}
			yield(local.StreamInfo{}, err)
		}
		for _, want := range []any{json.Delim('{'), "streams", json.Delim('[')} {
			if tok, err := dec.Token(); err != nil || tok != want {
				fail(fmt.Errorf("malformed answer: %v, %v", tok, err))
				return
			}
		}
		for dec.More() {
			var si local.StreamInfo
			if err := dec.Decode(&si); err != nil {
				fail(err)
				return
			}
			if !yield(si, nil) {
				return
			}
		}
		if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
			fail(fmt.Errorf("malformed answer: %v, %v", tok, err))
		}
	}
}

// Commands lists the commands the owner runs.
func (c *Client) Commands(ctx context.Context) ([]CommandInfo, error) {
	var out struct {
		Commands []CommandInfo `json:"commands"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/commands", nil, nil, &out)
	return out.Commands, err
}

// ReadStream yields a stream's events from version from, a page per
// request.
func (c *Client) ReadStream(ctx context.Context, stream string, from uint64) iter.Seq2[format.Event, error] {
	return c.pages(ctx, "/v1/streams/"+url.PathEscape(stream), from, nil)
}

// ReadAll yields the log from position from, a page per request. head, if
// not nil, receives the log's head as of the first page.
func (c *Client) ReadAll(ctx context.Context, from uint64, head *uint64) iter.Seq2[format.Event, error] {
	return c.pages(ctx, "/v1/log", from, head)
}

func (c *Client) pages(ctx context.Context, path string, from uint64, head *uint64) iter.Seq2[format.Event, error] {
	return func(yield func(format.Event, error) bool) {
		first := true
		for {
			var p Page
			if err := c.do(ctx, http.MethodGet, path+"?from="+strconv.FormatUint(max(from, 1), 10), nil, nil, &p); err != nil {
				yield(format.Event{}, err)
				return
			}
			if first && head != nil {
				*head = p.Head
			}
			first = false
			for _, ev := range p.Events {
				if !yield(ev, nil) {
					return
				}
			}
			if len(p.Events) == 0 || p.Next <= from {
				return
			}
			from = p.Next
		}
	}
}

// Subscribe yields the log from position from, then each event as it
// commits, until ctx ends (the iteration then just stops) or the owner goes
// away (it yields an error wrapping ErrUnreachable; resume from the last
// position seen + 1, through the owner or the file).
func (c *Client) Subscribe(ctx context.Context, from uint64) iter.Seq2[format.Event, error] {
	return func(yield func(format.Event, error) bool) {
		resp, err := c.send(ctx, http.MethodGet, "/v1/subscribe?from="+strconv.FormatUint(max(from, 1), 10), nil, nil)
		if err != nil {
			if ctx.Err() == nil {
				yield(format.Event{}, err)
			}
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // an event's data may be MiBs
		kind := ""
		for sc.Scan() {
			line := sc.Bytes()
			switch {
			case bytes.HasPrefix(line, []byte("event: ")):
				kind = string(line[len("event: "):])
			case bytes.HasPrefix(line, []byte("data: ")):
				data := line[len("data: "):]
				if kind == "error" {
					var body ErrorBody
					json.Unmarshal(data, &body)
					yield(format.Event{}, &APIError{Status: http.StatusServiceUnavailable, Body: body})
					return
				}
				var ev Event
				if err := json.Unmarshal(data, &ev); err != nil {
					yield(format.Event{}, fmt.Errorf("subscribe: malformed event: %w", err))
					return
				}
				if !yield(ev, nil) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			cause := sc.Err()
			if cause == nil {
				cause = io.EOF
			}
			yield(format.Event{}, fmt.Errorf("%w (%s): the stream ended: %v", ErrUnreachable, c.where, cause))
		}
	}
}
