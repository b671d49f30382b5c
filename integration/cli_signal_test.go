//go:build linux

package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecFileEndsOnSIGTERM: `evstore exec -f -` waiting for a line on a
// pipe that stays open ends on SIGTERM, reports what ran, exits 1 and
// releases the database.
func TestExecFileEndsOnSIGTERM(t *testing.T) {
	bin := buildCLI(t)
	db := filepath.Join(t.TempDir(), "sig.db")
	cmd := exec.Command(bin, "--db", db, "exec", "-f", "-")
	// A blocking pipe, as a shell gives: os.Pipe's ends are non-blocking,
	// and a child reading one of those happened to notice the signal.
	var fds [2]int
	if err := syscall.Pipe(fds[:]); err != nil {
		t.Fatal(err)
	}
	r, stdin := os.NewFile(uintptr(fds[0]), "stdin-r"), os.NewFile(uintptr(fds[1]), "stdin-w")
	defer stdin.Close()
	cmd.Stdin = r
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	io.WriteString(stdin, `{"command":"counter.increment","args":{"counter":"c"}}`+"\n")
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n') // line 1 ran: exec now waits for line 2
	if err != nil || !strings.HasPrefix(line, "line 1: ok") {
		t.Fatalf("first line %q, %v: %s", line, err, stderr.String())
	}
	waitReadingStdin(t, cmd.Process.Pid)
	cmd.Process.Signal(syscall.SIGTERM)
	var rest []byte
	done := make(chan error, 1)
	go func() {
		rest, _ = io.ReadAll(out)
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want 1", err)
		}
	case <-time.After(30 * time.Second): // a deadlock guard
		cmd.Process.Kill()
		t.Fatal("exec -f did not end on SIGTERM")
	}
	if !strings.Contains(string(rest), "1 ok, 0 failed (interrupted)") || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("stdout %q, stderr %q", rest, stderr.String())
	}
	if storeHead(t, db) != 1 {
		t.Fatal("the line before the signal was lost, or the database is still locked")
	}
}

// waitReadingStdin waits until a thread of process pid is blocked in
// read(0, …), so the signal lands while exec waits for input rather than
// between two lines.
func waitReadingStdin(t *testing.T, pid int) {
	t.Helper()
	read := map[string]string{"amd64": "0", "arm64": "63"}[runtime.GOARCH]
	if read == "" {
		return // the number of read(2) is not known here: signal at once
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Logf("cannot see the child's threads (%v): signalling at once", err)
			return
		}
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if err != nil {
				t.Logf("cannot see the child's system calls (%v): signalling at once", err)
				return
			}
			// "NR 0x0 …": system call NR, read, on fd 0.
			if f := strings.Fields(string(b)); len(f) > 1 && f[0] == read && f[1] == "0x0" {
				return
			}
		}
	}
	t.Fatal("exec never waited for input")
}
