package cli

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/server"
)

func TestTail(t *testing.T) {
	db := bankDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // deadlock guard
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int)
	var stderr strings.Builder
	go func() {
		code := Run(ctx, []string{"evstore", "--db", db, "tail", "--from", "2", "--stream-prefix", "account-b", "--interval", "20ms"}, strings.NewReader(""), pw, &stderr)
		pw.Close()
		done <- code
	}()
	lines := bufio.NewScanner(pr)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("tail ended early: %s", stderr.String())
		}
		return lines.Text()
	}
	if l := next(); !strings.Contains(l, "account-b  v1  AccountOpened") {
		t.Fatalf("first line %q", l)
	}
	if l := next(); !strings.Contains(l, "account-b  v2  TransferReceived") {
		t.Fatalf("second line %q", l)
	}
	// tail holds the file and serves it, so a writer gets in.
	mustExec(t, db, [2]string{"bank.deposit", `{"account":"a","amount":5}`}, [2]string{"bank.deposit", `{"account":"b","amount":7}`})
	if l := next(); !strings.HasPrefix(l, "7  ") || !strings.Contains(l, "account-b  v3  Deposited") {
		t.Fatalf("followed line %q", l)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after interrupt: %s", code, stderr.String())
	}
}

func TestTailUsage(t *testing.T) {
	runCLI(t, "", "--db", bankDB(t), "tail", "--interval", "0s").want(t, 2, nil, []string{"--interval must be positive"})
}

// tailRun is an evstore tail running in this process.
type tailRun struct {
	lines  *bufio.Scanner
	stderr *strings.Builder
	cancel context.CancelFunc
	done   chan int
	out    *io.PipeReader
	once   sync.Once
	code   int
}

// startTail runs evstore tail with args. No other CLI run may start before
// it has printed a line (see TestTailThroughOwner).
func startTail(t *testing.T, args ...string) *tailRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // deadlock guard
	pr, pw := io.Pipe()
	tr := &tailRun{lines: bufio.NewScanner(pr), stderr: &strings.Builder{}, cancel: cancel, done: make(chan int, 1), out: pr}
	go func() {
		code := Run(ctx, append([]string{"evstore"}, args...), strings.NewReader(""), pw, tr.stderr)
		pw.Close()
		tr.done <- code
	}()
	t.Cleanup(func() { tr.stop(t) })
	return tr
}

func (tr *tailRun) next(t *testing.T) string {
	t.Helper()
	if !tr.lines.Scan() {
		t.Fatalf("tail ended early: %s", tr.stderr.String())
	}
	return tr.lines.Text()
}

// stop interrupts the tail and returns its exit code.
func (tr *tailRun) stop(t *testing.T) int {
	t.Helper()
	tr.once.Do(func() {
		tr.cancel()
		go io.Copy(io.Discard, tr.out)
		tr.code = <-tr.done
	})
	return tr.code
}

// TestTailThroughOwner: tail prints the same, with the same exit code,
// whether it holds the file itself or follows the process that holds it.
func TestTailThroughOwner(t *testing.T) {
	run := func(db string) (lines []string, code int) {
		tr := startTail(t, "--db", db, "tail", "--from", "2", "--stream-prefix", "account-b")
		lines = append(lines, tr.next(t), tr.next(t))
		mustExec(t, db, [2]string{"bank.deposit", `{"account":"a","amount":5}`}, [2]string{"bank.deposit", `{"account":"b","amount":7}`})
		lines = append(lines, tr.next(t))
		// Its first lines also tell that it has parsed its flags: urfave
		// keeps global state, so two CLI runs may not parse at once.
		tj := startTail(t, "--db", db, "tail", "--json", "--type", "Deposited", "--from", "6")
		lines = append(lines, tj.next(t), tj.next(t))
		mustExec(t, db, [2]string{"bank.deposit", `{"account":"b","amount":9}`})
		lines = append(lines, tr.next(t), tj.next(t))
		code = tj.stop(t)*10 + tr.stop(t)
		return lines, code
	}
	file := bankDB(t)
	owned := bankDB(t)
	ownDB(t, owned)
	a, acode := run(file)
	b, bcode := run(owned)
	if acode != 0 || bcode != 0 {
		t.Fatalf("exit codes: file %d, owner %d", acode, bcode)
	}
	if len(a) != len(b) {
		t.Fatalf("file: %q\nowner: %q", a, b)
	}
	for i := range a {
		if normalize(a[i], file) != normalize(b[i], owned) {
			t.Errorf("line %d differs:\nfile:  %q\nowner: %q", i, a[i], b[i])
		}
	}
	if !strings.Contains(a[5], "account-b  v4  Deposited") || !strings.Contains(a[6], `"type":"Deposited"`) || !strings.Contains(a[6], `"position":8`) {
		t.Fatalf("lines %q", a)
	}
	for _, args := range [][]string{{"tail", "x"}, {"tail", "--interval", "0s"}} {
		fa := runCLI(t, "", append([]string{"--db", file}, args...)...)
		fb := runCLI(t, "", append([]string{"--db", owned}, args...)...)
		if fa.code != fb.code || fa.stdout != fb.stdout || fa.stderr != fb.stderr {
			t.Errorf("%v differs: %+v, %+v", args, fa, fb)
		}
	}
}

// TestTailServes: a tail that holds the file serves its socket, so that
// the other commands work beside it; when it stops, the socket goes.
func TestTailServes(t *testing.T) {
	db := bankDB(t)
	tr := startTail(t, "--db", db, "tail", "--from", "5")
	if l := tr.next(t); !strings.HasPrefix(l, "5  ") {
		t.Fatalf("first line %q", l)
	}
	c := dialTest(t, db) // tail answers on the socket
	if st, err := c.Status(context.Background()); err != nil || st.Head != 5 {
		t.Fatalf("status through tail: %+v, %v", st, err)
	}
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	if l := tr.next(t); !strings.Contains(l, "counter-c  v1") {
		t.Fatalf("followed line %q", l)
	}
	runCLI(t, "", "--db", db, "read", "counter-c").want(t, 0, []string{"counter-c  v1"}, nil)
	runCLI(t, "", "--db", db, "log", "--from", "6").want(t, 0, []string{"6  "}, nil)
	runCLI(t, "", "--db", db, "stats").want(t, 0, []string{"events       6 (head 6)"}, nil)
	runCLI(t, "", "--db", db, "streams", "--prefix", "counter-").want(t, 0, []string{"counter-c  v1"}, nil)
	if code := tr.stop(t); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.stderr)
	}
	if _, err := os.Stat(server.SocketPath(db)); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if head(t, db) != 6 {
		t.Fatal("the command served by tail is not in the file")
	}
}

// TestTailOutlivesOwner: a tail following an owner that stops goes on
// with the file, without missing or repeating an event.
func TestTailOutlivesOwner(t *testing.T) {
	db := bankDB(t)
	_, stop := ownDBUntil(t, db)
	tr := startTail(t, "--db", db, "tail", "--from", "5")
	if l := tr.next(t); !strings.HasPrefix(l, "5  ") {
		t.Fatalf("first line %q", l)
	}
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	if l := tr.next(t); !strings.HasPrefix(l, "6  ") {
		t.Fatalf("line %q", l)
	}
	stop()
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`}, [2]string{"counter.increment", `{"counter":"c"}`})
	for _, want := range []string{"7  ", "8  "} {
		if l := tr.next(t); !strings.HasPrefix(l, want) || !strings.Contains(l, "counter-c") {
			t.Fatalf("after the owner stopped: line %q, want %q…", l, want)
		}
	}
	if code := tr.stop(t); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.stderr)
	}
}

// TestTailReadOnlyFile: on a file this user may only read, tail cannot
// hold and serve it: it looks read-only every --interval, and writers go
// on between its looks.
func TestTailReadOnlyFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write any file")
	}
	db := bankDB(t)
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	tr := startTail(t, "--db", db, "tail", "--from", "5", "--interval", "10ms")
	if l := tr.next(t); !strings.HasPrefix(l, "5  ") {
		t.Fatalf("first line %q", l)
	}
	if _, err := os.Stat(server.SocketPath(db)); !os.IsNotExist(err) {
		t.Fatalf("a read-only tail serves a socket: %v", err)
	}
	if err := os.Chmod(db, 0o644); err != nil { // the writer's own permission
		t.Fatal(err)
	}
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	if l := tr.next(t); !strings.HasPrefix(l, "6  ") {
		t.Fatalf("followed line %q", l)
	}
	if code := tr.stop(t); code != 0 {
		t.Fatalf("exit %d: %s", code, tr.stderr)
	}
}
