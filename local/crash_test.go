package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/format"
)

// crashChildEnv makes the test binary act as the crashing writer.
const crashChildEnv = "EVSTORE_CRASH_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends three-stream requests from several goroutines (so
// group commits hold many of them) and prints "ack REQ LAST" once each is
// durable. It runs until killed.
func crashChild(path string) {
	s, err := Open(path, Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				req := fmt.Sprintf("%d-%d-%d", os.Getpid(), w, i)
				events := make([]format.EventData, 3)
				for j := range events {
					events[j] = format.EventData{Stream: fmt.Sprintf("s-%d", (w+j)%5), Type: "Part", Data: fmt.Appendf(nil, `{"req":%q,"part":%d}`, req, j)}
				}
				last, err := s.Append(context.Background(), events)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", req, last)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledgedAndAtomic kills a writer with SIGKILL at random
// moments and checks, after each, that every acknowledged request is there
// and no request is partly visible.
func TestCrashKeepsAcknowledgedAndAtomic(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs a child process 20 times; skipped with -short")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	acked := map[string]uint64{}
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// Wait for the first ack so every round writes something, then
		// kill at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("round %d: child wrote nothing: %s", round, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		cmd.Process.Kill()
		record := func(line string) {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ack" {
				t.Fatalf("bad child line %q", line)
			}
			last, _ := strconv.ParseUint(f[2], 10, 64)
			acked[f[1]] = last
		}
		record(first)
		for line := range lines {
			record(line)
		}
		cmd.Wait()
		verifyCrashedStore(t, path, acked)
	}
	t.Logf("%d acknowledged requests survived 20 kills", len(acked))
}

func verifyCrashedStore(t *testing.T, path string, acked map[string]uint64) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	parts := map[string]int{}
	var pos uint64
	for e, err := range s.ReadAll(1) {
		if err != nil {
			t.Fatalf("read after kill: %v", err)
		}
		pos++
		if e.Position != pos {
			t.Fatalf("gap: position %d where %d expected", e.Position, pos)
		}
		var d struct {
			Req string `json:"req"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		parts[d.Req]++
	}
	if pos != s.Head() {
		t.Fatalf("read %d events, head %d", pos, s.Head())
	}
	for req, n := range parts {
		if n != 3 {
			t.Fatalf("request %s is partly visible: %d of 3 events", req, n)
		}
	}
	for req, last := range acked {
		if parts[req] != 3 || last > s.Head() {
			t.Fatalf("acknowledged request %s (last %d) lost; head %d", req, last, s.Head())
		}
	}
}
