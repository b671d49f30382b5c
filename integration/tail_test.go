package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/evstore/evstore/server"
)

// tailProc is an evstore tail process whose output lines arrive on lines.
type tailProc struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan error
	stderr strings.Builder
}

func startTailProc(t *testing.T, bin string, args ...string) *tailProc {
	t.Helper()
	p := &tailProc{cmd: exec.Command(bin, args...), lines: make(chan string, 100), exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "EVSTORE_DB=")
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		p.exited <- p.cmd.Wait()
	}()
	return p
}

// want reads the next line, which must start with prefix.
func (p *tailProc) want(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("tail ended: %s", p.stderr.String())
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("tail printed %q, want %q…", l, prefix)
		}
		return l
	case <-time.After(time.Minute): // deadlock guard
		t.Fatalf("tail printed nothing for a minute, want %q…", prefix)
	}
	return ""
}

func (p *tailProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	for range p.lines {
	}
	if err := <-p.exited; err != nil {
		t.Fatalf("tail exited with %v: %s", err, p.stderr.String())
	}
}

// TestTailServesOtherProcesses: a tail that holds the file serves it, so
// exec, stats, streams and a second tail in other processes work beside
// it; when it stops, the second tail goes on with the file, without
// missing or repeating an event.
func TestTailServesOtherProcesses(t *testing.T) {
	bin := buildCLI(t)
	db := filepath.Join(t.TempDir(), "t.db")
	exec1 := func() {
		t.Helper()
		if out, errOut, code := cliRun(t, bin, "--db", db, "exec", "counter.increment", `{"counter":"c"}`); code != 0 {
			t.Fatalf("exec: exit %d: %s%s", code, out, errOut)
		}
	}
	exec1()
	first := startTailProc(t, bin, "--db", db, "tail", "--from", "1")
	first.want(t, "1  ")
	for range 3 {
		exec1()
	}
	for _, p := range []string{"2  ", "3  ", "4  "} {
		first.want(t, p)
	}
	if out, errOut, code := cliRun(t, bin, "--db", db, "stats"); code != 0 || !strings.Contains(out, "events       4 (head 4)") {
		t.Fatalf("stats beside tail: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := cliRun(t, bin, "--db", db, "streams"); code != 0 || !strings.HasPrefix(out, "counter-c  v4") {
		t.Fatalf("streams beside tail: exit %d: %s%s", code, out, errOut)
	}
	second := startTailProc(t, bin, "--db", db, "tail", "--json", "--from", "4")
	second.want(t, `{"position":4,`)
	first.stop(t)
	exec1()
	second.want(t, `{"position":5,`)
	exec1() // through the second tail, once it holds the file
	second.want(t, `{"position":6,`)
	second.stop(t)
	if _, err := os.Stat(server.SocketPath(db)); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
	if out, _, code := cliRun(t, bin, "--db", db, "streams"); code != 0 || !strings.HasPrefix(out, "counter-c  v6") {
		t.Fatalf("after the tails: exit %d: %s", code, out)
	}
}
