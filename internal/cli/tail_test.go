package cli

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"
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
	// tail holds the file only while it reads, so a writer gets in.
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
