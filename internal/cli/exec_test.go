package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestExec(t *testing.T) {
	opened := [][2]string{
		{"bank.open", `{"account":"alice","owner":"Alice"}`},
		{"bank.open", `{"account":"bob","owner":"Bob"}`},
		{"bank.deposit", `{"account":"alice","amount":1000}`},
	}
	tests := []struct {
		name   string
		setup  [][2]string
		args   []string // after "exec"
		code   int
		stdout []string
		stderr []string
		noDB   bool // the run must not create the database
	}{
		{name: "append", args: []string{"append", `{"stream":"s","type":"T","data":{"x": 1}}`},
			stdout: []string{"appended s v1 T at position 1\n"}},
		{name: "transfer", setup: opened, args: []string{"bank.transfer", `{"from":"alice","to":"bob","amount":300}`},
			stdout: []string{"appended account-alice v3 TransferSent at position 4\nappended account-bob v2 TransferReceived at position 5\n"}},
		{name: "insufficient funds", setup: opened, args: []string{"bank.transfer", `{"from":"bob","to":"alice","amount":999999}`}, code: 1,
			stderr: []string{`evstore: bank.transfer failed, nothing was written: insufficient funds in account "bob": balance is 0 cents, the transfer of 999999 cents is 999999 cents short`}},
		{name: "unknown account", setup: opened, args: []string{"bank.deposit", `{"account":"zed","amount":1}`}, code: 1,
			stderr: []string{`unknown account "zed": open it first with bank.open`}},
		{name: "already open", setup: opened, args: []string{"bank.open", `{"account":"bob","owner":"B"}`}, code: 1,
			stderr: []string{`account "bob" is already open`}},
		{name: "same account", args: []string{"bank.transfer", `{"from":"a","to":"a","amount":1}`}, code: 2, noDB: true,
			stderr: []string{"cannot transfer from account \"a\" to itself"}},
		{name: "zero amount", args: []string{"bank.withdraw", `{"account":"a","amount":0}`}, code: 2, noDB: true,
			stderr: []string{"bank.withdraw: amount must be a positive number of cents, got 0: nothing was written"}},
		{name: "negative amount", args: []string{"bank.deposit", `{"account":"a","amount":-5}`}, code: 2, noDB: true,
			stderr: []string{"amount must be a positive number of cents, got -5"}},
		{name: "amount too large", args: []string{"bank.deposit", `{"account":"a","amount":1e30}`}, code: 2, noDB: true,
			stderr: []string{`field "amount" must be an integer`}},
		{name: "invalid UTF-8 in a stream id", args: []string{"append", "{\"stream\":\"a\xffb\",\"type\":\"T\",\"data\":1}"}, code: 2, noDB: true,
			stderr: []string{"not valid UTF-8 (at byte 12)", "nothing was written"}},
		{name: "lone surrogate in a stream id", args: []string{"append", `{"stream":"a\udc80b","type":"T","data":1}`}, code: 2, noDB: true,
			stderr: []string{`field "stream" has a \u escape of half a UTF-16 surrogate pair`}},
		{name: "unpaired high surrogate", args: []string{"counter.increment", `{"counter":"\ud800x"}`}, code: 2, noDB: true,
			stderr: []string{`field "counter" has a \u escape`}},
		{name: "invalid UTF-8 in a key", args: []string{"--key", "k\xff", "counter.increment", `{"counter":"c"}`}, code: 2, noDB: true,
			stderr: []string{"exec: --key is not valid UTF-8"}},
		{name: "file is a directory", args: []string{"-f", os.TempDir()}, code: 2, noDB: true,
			stderr: []string{"it is a directory"}},
		{name: "version conflict", setup: [][2]string{{"append", `{"stream":"s","type":"T","data":1}`}},
			args: []string{"append", `{"stream":"s","type":"T","data":2,"expect":0}`}, code: 1,
			stderr: []string{`append failed, nothing was written: stream "s": expected it not to exist, found version 1: read the stream and retry`}},

		// usage errors: nothing is opened, so nothing is created
		{name: "no name", args: nil, code: 2, noDB: true, stderr: []string{"exec: missing the command name", "evstore commands"}},
		{name: "unknown name", args: []string{"bank.rob", `{}`}, code: 2, noDB: true,
			stderr: []string{`unknown command "bank.rob" (known: append, bank.deposit`, "run 'evstore commands'"}},
		{name: "missing args", args: []string{"bank.open"}, code: 2, noDB: true,
			stderr: []string{`bad arguments for bank.open: field "account" is missing; expected {"account": string, "owner": string}`}},
		{name: "invalid JSON", args: []string{"bank.open", `{"account":`}, code: 2, noDB: true, stderr: []string{"are not valid JSON"}},
		{name: "unknown field", args: []string{"bank.open", `{"account":"a","owner":"A","age":3}`}, code: 2, noDB: true,
			stderr: []string{`field "age" is not a known field (known: account, owner)`}},
		{name: "wrong type", args: []string{"bank.deposit", `{"account":"a","amount":"10"}`}, code: 2, noDB: true,
			stderr: []string{`field "amount" must be an integer`, "got string"}},
		{name: "invalid stream id", args: []string{"append", `{"stream":"a\u0000b","type":"T","data":1}`}, code: 2, noDB: true,
			stderr: []string{`field "stream" gives an invalid stream id`}},
		{name: "flag after the name", args: []string{"append", "--json", `{"stream":"s","type":"T","data":1}`}, code: 2, noDB: true, stderr: []string{"flag --json after the arguments"}},
		{name: "too many args", args: []string{"append", `{}`, `{}`}, code: 2, noDB: true, stderr: []string{"exec: too many arguments (3)"}},
		{name: "flag after args", args: []string{"counter.increment", `{"counter":"c"}`, "--json"}, code: 2, noDB: true,
			stderr: []string{"flag --json after the arguments: flags go first"}},
		{name: "empty key", args: []string{"--key", "", "counter.increment", `{"counter":"c"}`}, code: 2, noDB: true,
			stderr: []string{"exec: --key must not be empty"}},
		{name: "long key", args: []string{"--key", strings.Repeat("k", 1025), "counter.increment", `{"counter":"c"}`}, code: 2, noDB: true,
			stderr: []string{"the limit is 1024"}},
		{name: "file and name", args: []string{"-f", "x.jsonl", "append"}, code: 2, noDB: true, stderr: []string{"-f takes no NAME or ARGS"}},
		{name: "file and key", args: []string{"-f", "-", "--key", "k"}, code: 2, noDB: true, stderr: []string{"--key applies to one command"}},
		{name: "missing file", args: []string{"-f", "/nonexistent/cmds.jsonl"}, code: 2, noDB: true,
			stderr: []string{"exec: cannot read -f /nonexistent/cmds.jsonl: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := tempDB(t)
			mustExec(t, db, tt.setup...)
			before := head(t, db)
			r := runCLI(t, "", append([]string{"--db", db, "exec"}, tt.args...)...)
			r.want(t, tt.code, tt.stdout, tt.stderr)
			if tt.code != 0 {
				if r.stdout != "" {
					t.Errorf("failure printed %q on stdout", r.stdout)
				}
				if after := head(t, db); after != before {
					t.Errorf("failed run moved head %d -> %d", before, after)
				}
			}
			if tt.noDB && len(tt.setup) == 0 {
				noFile(t, db)
			}
		})
	}
}

func TestExecNothingAppended(t *testing.T) {
	// No built-in command appends nothing, so use a key that was used by a
	// command that appended; the replay appends nothing and says so.
	db := tempDB(t)
	args := []string{"--db", db, "exec", "--key", "k-1", "counter.increment", `{"counter":"c"}`}
	runCLI(t, "", args...).want(t, 0, []string{"appended counter-c v1 Incremented at position 1\n"}, nil)
	r := runCLI(t, "", args...)
	r.want(t, 0, []string{`key "k-1" already used: nothing appended now; the first run appended:`, "  counter-c v1 Incremented at position 1\n"}, nil)
	if strings.Contains(r.stdout, "appended counter-c") {
		t.Errorf("replay claims to have appended: %q", r.stdout)
	}
	if head(t, db) != 1 {
		t.Error("replay appended")
	}
}

func TestExecKeyReusedByAnotherCommand(t *testing.T) {
	db := tempDB(t)
	runCLI(t, "", "--db", db, "exec", "--key", "k1", "counter.increment", `{"counter":"c"}`).want(t, 0, nil, nil)
	for _, args := range [][]string{
		{"append", `{"stream":"s","type":"T","data":{}}`},
		{"counter.increment", `{"counter":"d"}`},
	} {
		r := runCLI(t, "", append([]string{"--db", db, "exec", "--key", "k1"}, args...)...)
		r.want(t, 1, nil, []string{`key "k1"`, "already used by a different request", "nothing was written"})
	}
	// The same request with other spacing is a replay.
	runCLI(t, "", "--db", db, "exec", "--key", "k1", "counter.increment", `{ "counter": "c" }`).want(t, 0, []string{`key "k1" already used`}, nil)
	if head(t, db) != 1 {
		t.Error("a reused key appended")
	}
}

func TestExecJSON(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"bank.open", `{"account":"a","owner":"A"}`}, [2]string{"bank.open", `{"account":"b","owner":"B"}`},
		[2]string{"bank.deposit", `{"account":"a","amount":50}`})
	for i, dup := range []bool{false, true} {
		r := runCLI(t, "", "--db", db, "exec", "--json", "--key", "t1", "bank.transfer", `{"from":"a","to":"b","amount":20}`)
		r.want(t, 0, nil, nil)
		var got struct {
			Command   string
			OK        bool
			Position  *uint64
			Retries   *int
			Duplicate bool
			Events    []jsonEvent
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("run %d: %q: %v", i, r.stdout, err)
		}
		if got.Command != "bank.transfer" || !got.OK || got.Position == nil || *got.Position != 5 || got.Retries == nil || got.Duplicate != dup || len(got.Events) != 2 {
			t.Fatalf("run %d: %+v", i, got)
		}
		ev := got.Events[1]
		if ev.Position != 5 || ev.Stream != "account-b" || ev.Version != 2 || ev.Type != "TransferReceived" ||
			string(ev.Data) != `{"amount":20,"balance":20,"from":"a"}` || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("event %+v", ev)
		}
	}
	// A failure prints nothing on stdout, even with --json.
	r := runCLI(t, "", "--db", db, "exec", "--json", "bank.withdraw", `{"account":"b","amount":21}`)
	r.want(t, 1, nil, []string{"the withdrawal of 21 cents is 1 cents short"})
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
}

const fileInput = `{"command":"bank.open","args":{"account":"a","owner":"A"}}

{"command":"bank.open","args":{"account":"b","owner":"B"},"key":"open-b"}
{"command":"bank.deposit","args":{"account":"a","amount":100}}
this is not json
{"command":"bank.transfer","args":{"from":"a","to":"b","amount":500}}
{"command":"bank.transfer","args":{"from":"a","to":"b","amount":"5"}}
{"command":"bank.nope"}
{"command":"bank.transfer","args":{"from":"a","to":"b","amount":60}}
{"command":"bank.open","args":{"account":"b","owner":"B"},"key":"open-b"}
{"command":"counter.increment","args":{"counter":"c"},"kye":"x"}
["counter.increment"]
   {"args":{"counter":"c"}}
{"command":"counter.increment","args":null}
{"command":"counter.increment","args":{"counter":"c"}}`

func TestExecFile(t *testing.T) {
	wantLines := []string{
		"line 1: ok bank.open: appended account-a v1 AccountOpened at position 1",
		"line 3: ok bank.open: appended account-b v1 AccountOpened at position 2",
		"line 4: ok bank.deposit: appended account-a v2 Deposited at position 3",
		"line 5: FAILED not a command line: invalid JSON",
		`line 6: FAILED bank.transfer failed, nothing was written: insufficient funds in account "a": balance is 100 cents, the transfer of 500 cents is 400 cents short`,
		`line 7: FAILED bad arguments for bank.transfer: field "amount" must be an integer`,
		`line 8: FAILED unknown command "bank.nope"`,
		"line 9: ok bank.transfer: appended account-a v3 TransferSent at position 4; account-b v2 TransferReceived at position 5",
		`line 10: ok bank.open: key "open-b" already used, nothing appended (the first run appended account-b v1 AccountOpened at position 2)`,
		`line 11: FAILED not a command line: unknown field "kye"`,
		"line 12: FAILED not a command line: not a JSON object",
		`line 13: FAILED not a command line: "command" is missing`,
		`line 14: FAILED bad arguments for counter.increment: field "counter" is missing`,
		"line 15: ok counter.increment: appended counter-c v1 Incremented at position 6",
		"6 ok, 8 failed",
	}
	db := tempDB(t)
	r := runCLI(t, fileInput, "--db", db, "exec", "-f", "-")
	r.want(t, 1, nil, []string{"evstore: exec: 8 of 14 commands failed; each failed one wrote nothing"})
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(got) != len(wantLines) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(wantLines), r.stdout)
	}
	for i, w := range wantLines {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s...", i, got[i], w)
		}
	}
	if head(t, db) != 6 {
		t.Errorf("head %d, want 6", head(t, db))
	}

	// The same input from a file, as JSON, against a fresh database.
	db = tempDB(t)
	path := filepath.Join(t.TempDir(), "cmds.jsonl")
	if err := os.WriteFile(path, []byte(fileInput), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "--db", db, "exec", "--json", "-f", path)
	r.want(t, 1, nil, []string{"8 of 14 commands failed"})
	jl := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(jl) != 15 {
		t.Fatalf("%d JSON lines:\n%s", len(jl), r.stdout)
	}
	for i, l := range jl[:14] {
		var o struct {
			Line     int
			Command  string
			OK       bool
			Position uint64
			Events   []jsonEvent
			Error    string
			ExitCode int `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		ok := !strings.Contains(wantLines[i], "FAILED")
		if o.OK != ok || (ok && len(o.Events) == 0) || (!ok && (o.Error == "" || o.ExitCode == 0)) {
			t.Errorf("line %d: %s", i, l)
		}
		if strings.Contains(wantLines[i], "insufficient") && o.ExitCode != 1 || strings.Contains(wantLines[i], "bad arguments") && o.ExitCode != 2 {
			t.Errorf("exit code in %s", l)
		}
	}
	if jl[14] != `{"summary":{"ok":6,"failed":8}}` {
		t.Errorf("summary %s", jl[14])
	}
}

func TestExecFileNoDatabase(t *testing.T) {
	// Blank input and input of only bad lines need no database, so none is
	// created.
	for _, input := range []string{"", "\n  \n", "nope\n{\"command\":\"x\"}\n{\"command\":\"bank.open\",\"args\":{}}\n"} {
		db := tempDB(t)
		r := runCLI(t, input, "--db", db, "exec", "-f", "-")
		if strings.TrimSpace(input) == "" {
			r.want(t, 0, []string{"0 ok, 0 failed\n"}, nil)
		} else {
			r.want(t, 1, []string{"0 ok, 3 failed\n"}, []string{"3 of 3 commands failed"})
		}
		noFile(t, db)
	}
}

func TestExecFileLongLine(t *testing.T) {
	// Lines are not limited to bufio.Scanner's 64 KiB.
	db := tempDB(t)
	big := strings.Repeat("x", 200<<10)
	r := runCLI(t, `{"command":"append","args":{"stream":"s","type":"T","data":"`+big+`"}}`, "--db", db, "exec", "-f", "-")
	r.want(t, 0, []string{"line 1: ok append", "1 ok, 0 failed"}, nil)
}

// TestFailedExecLeavesNoFile: a command refused on a database it would
// have created leaves no empty file behind ("nothing was written").
func TestFailedExecLeavesNoFile(t *testing.T) {
	db := tempDB(t)
	runCLI(t, "", "--db", db, "exec", "bank.deposit", `{"account":"zz","amount":5}`).want(t, 1, nil, []string{"nothing was written"})
	noFile(t, db)
	runCLI(t, "", "--db", db, "exec", "-f", "-").want(t, 0, []string{"0 ok, 0 failed"}, nil)
	noFile(t, db)
	runCLI(t, "", "--db", db, "exec", "counter.increment", `{"counter":"c"}`).want(t, 0, nil, nil)
	if head(t, db) != 1 {
		t.Fatal("a successful exec left no database")
	}
}

// lockedBuffer collects output written by a run on another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls until cond holds, failing after a generous deadlock guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExecFileSignalWhileWaitingForInput: exec -f reading a pipe that
// stays open and silent must still end on a signal (the context), report
// what ran and release the database.
func TestExecFileSignalWhileWaitingForInput(t *testing.T) {
	db := tempDB(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(ctx, []string{"evstore", "--db", db, "exec", "-f", "-"}, pr, &stdout, &stderr)
	}()
	if _, err := io.WriteString(pw, `{"command":"counter.increment","args":{"counter":"c"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	// Once line 1 is reported, exec is waiting for line 2, which never comes.
	waitFor(t, "line 1", func() bool { return strings.Contains(stdout.String(), "line 1: ok") })
	cancel()
	select {
	case c := <-code:
		r := result{c, stdout.String(), stderr.String()}
		checkStderr(t, r)
		r.want(t, 1, []string{"1 ok, 0 failed (interrupted)"}, []string{"interrupted"})
	case <-time.After(30 * time.Second): // a deadlock guard
		t.Fatal("exec -f did not end on a signal while waiting for input")
	}
	if head(t, db) != 1 {
		t.Error("the line before the signal was lost")
	}
}

// TestExecFileLineLimit: a line longer than the largest event plus its
// command is refused by number, without being held, and the next lines run.
func TestExecFileLineLimit(t *testing.T) {
	db := tempDB(t)
	huge := `{"command":"append","args":{"stream":"s","type":"T","data":"` + strings.Repeat("x", maxLineBytes) + `"}}`
	input := `{"command":"counter.increment","args":{"counter":"c"}}` + "\n" + huge + "\n" + `{"command":"counter.increment","args":{"counter":"c"}}` + "\n"
	r := runCLI(t, input, "--db", db, "exec", "-f", "-")
	r.want(t, 1, []string{"line 1: ok", fmt.Sprintf("line 2: FAILED line 2 is %d bytes, the limit is %d", len(huge)+1, maxLineBytes), "line 3: ok", "2 ok, 1 failed"}, nil)
	r = runCLI(t, huge, "--db", db, "exec", "--json", "-f", "-")
	if !strings.Contains(r.stdout, `"exit_code":2`) || r.code != 1 {
		t.Errorf("an over-long last line: exit %d, %s", r.code, r.stdout)
	}
	if head(t, db) != 2 {
		t.Errorf("head %d, want 2", head(t, db))
	}
}

// TestExecFileBadText: a line that is not UTF-8, or whose key would decode
// to U+FFFD, is refused as bad input (exit_code 2) and runs nothing.
func TestExecFileBadText(t *testing.T) {
	db := tempDB(t)
	input := "{\"command\":\"append\",\"args\":{\"stream\":\"a\xffb\",\"type\":\"T\",\"data\":1}}\n" +
		`{"command":"counter.increment","args":{"counter":"c"},"key":"\udc80"}` + "\n" +
		`{"command":"bank.deposit","args":{"account":"a","amount":-5}}` + "\n"
	r := runCLI(t, input, "--db", db, "exec", "--json", "-f", "-")
	if r.code != 1 || strings.Count(r.stdout, `"exit_code":2`) != 3 || !strings.Contains(r.stdout, "not valid UTF-8") {
		t.Errorf("exit %d, want three usage failures:\n%s", r.code, r.stdout)
	}
	noFile(t, db)
}
