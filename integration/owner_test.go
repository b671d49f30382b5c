package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/replicate/pgtest"
	"github.com/evstore/evstore/server"
)

// cliRun runs the evstore binary and returns its output and exit code.
func cliRun(t testing.TB, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EVSTORE_DB=", "EVSTORE_PG_URL=")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// owner is a process holding a database and serving its socket.
type owner struct {
	cmd    *exec.Cmd
	out    bytes.Buffer // stdout and stderr
	exited chan error
}

// startOwner starts a process that will serve db, and waits until it
// answers on the socket.
func startOwner(t testing.TB, db string, name string, args ...string) *owner {
	t.Helper()
	o := &owner{cmd: exec.Command(name, args...), exited: make(chan error, 1)}
	o.cmd.Env = append(os.Environ(), "EVSTORE_DB=", "EVSTORE_PG_URL=")
	o.cmd.Stdout, o.cmd.Stderr = &lockedWriter{w: &o.out}, &lockedWriter{w: &o.out}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { o.exited <- o.cmd.Wait() }()
	t.Cleanup(func() { o.cmd.Process.Kill() })
	deadline := time.Now().Add(time.Minute) // deadlock guard
	for {
		if c, err := server.DialSocket(context.Background(), server.SocketPath(db)); err == nil {
			c.Close()
			return o
		}
		select {
		case err := <-o.exited:
			t.Fatalf("%s exited before serving (%v):\n%s", name, err, o.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never served %s", name, server.SocketPath(db))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (o *owner) stop(t testing.TB) {
	t.Helper()
	o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-o.exited:
		if err != nil {
			t.Fatalf("owner exited with %v:\n%s", err, o.out.String())
		}
	case <-time.After(time.Minute): // deadlock guard
		t.Fatalf("owner did not stop on SIGTERM:\n%s", o.out.String())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var positionRE = regexp.MustCompile(`at position (\d+)`)

// TestReplicateWhileCLIRuns is acceptance item 1 of the one-owner design:
// a following replicator holds the file while 8 processes at a time run
// evstore exec (1,000 in all) and evstore log; every command succeeds and
// PostgreSQL ends equal to the log. CI runs 200 commands (a process each
// costs); EVSTORE_LONG=1 runs the full 1,000.
func TestReplicateWhileCLIRuns(t *testing.T) {
	url, schema := pgtest.Schema(t)
	bin := buildCLI(t)
	db := filepath.Join(t.TempDir(), "till.db")
	if _, errOut, code := cliRun(t, bin, "--db", db, "exec", "counter.increment", `{"counter":"first"}`); code != 0 {
		t.Fatal(errOut)
	}
	rep := startOwner(t, db, bin, "--db", db, "replicate", "--to", url, "--schema", schema, "--source", "till", "--flush-interval", "20ms")

	const workers = 8
	perWorker := 25
	if os.Getenv("EVSTORE_LONG") != "" {
		perWorker = 125
	}
	var failures atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				runs := [][]string{{"--db", db, "exec", "--key", fmt.Sprintf("w%d-%d", w, i), "counter.increment", fmt.Sprintf(`{"counter":"w%d"}`, w)}}
				if i%25 == 0 {
					runs = append(runs, []string{"--db", db, "log", "--from", strconv.Itoa(i), "--limit", "10"})
				}
				for _, args := range runs {
					out, errOut, code := cliRun(t, bin, args...)
					if code != 0 {
						failures.Add(1)
						t.Errorf("%v: exit %d: %s%s", args, code, out, errOut)
					}
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d CLI runs failed", failures.Load())
	}
	// Every command is in the log, once: the stream versions count them.
	for w := range workers {
		out, errOut, code := cliRun(t, bin, "--db", db, "read", "--from", strconv.Itoa(perWorker), fmt.Sprintf("counter-w%d", w))
		if code != 0 || !strings.Contains(out, fmt.Sprintf("v%d ", perWorker)) || strings.Contains(out, fmt.Sprintf("v%d ", perWorker+1)) {
			t.Fatalf("counter-w%d: exit %d\n%s%s", w, code, out, errOut)
		}
	}
	total := int64(workers*perWorker + 1)
	conn := pgtest.Conn(t, url)
	testutil.WaitFor(t, time.Minute, "replicated to the head", func() bool {
		var pos int64
		conn.QueryRow(context.Background(), "SELECT coalesce((SELECT position FROM "+ident(schema)+".sources WHERE name = 'till'), 0)").Scan(&pos)
		return pos == total
	})
	rep.stop(t)
	store := openTestStore(t, db)
	if store.Head() != uint64(total) {
		t.Fatalf("head %d, want %d", store.Head(), total)
	}
	verifySource(t, conn, schema, "till", store)
}

// TestOwnerKilledMidLoad is acceptance item 2: the owner is SIGKILLed
// while clients run commands through it; the next calls open the file
// directly, and every acknowledged command is in the log.
func TestOwnerKilledMidLoad(t *testing.T) {
	bin := buildCLI(t)
	db := filepath.Join(t.TempDir(), "k.db")
	own := startOwner(t, db, bin, "--db", db, "serve")

	const workers, perWorker = 4, 40
	var acked sync.Map // position -> stream
	var ackCount, killed atomic.Int64
	var wg sync.WaitGroup
	killAt := int64(workers * perWorker / 3)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				stream := fmt.Sprintf("counter-k%d", w)
				out, errOut, code := cliRun(t, bin, "--db", db, "exec", "--key", fmt.Sprintf("k%d-%d", w, i), "counter.increment", fmt.Sprintf(`{"counter":"k%d"}`, w))
				switch {
				case code == 0:
					m := positionRE.FindStringSubmatch(out)
					if m == nil {
						t.Errorf("no position in %q", out)
						continue
					}
					acked.Store(m[1], stream)
					if ackCount.Add(1) == killAt && killed.CompareAndSwap(0, 1) {
						own.cmd.Process.Kill()
					}
				case killed.Load() == 1 && code == 1 && strings.Contains(errOut, "stopped answering"):
					// Cut mid-request: the outcome is unknown and said so.
				default:
					t.Errorf("exec: exit %d: %s%s", code, out, errOut)
				}
			}
		})
	}
	wg.Wait()
	<-own.exited
	if killed.Load() != 1 {
		t.Fatal("the owner was never killed")
	}
	// The socket is stale now; the CLI opens the file itself.
	if out, errOut, code := cliRun(t, bin, "--db", db, "exec", "counter.increment", `{"counter":"after"}`); code != 0 {
		t.Fatalf("after the kill: exit %d: %s%s", code, out, errOut)
	}
	store := openTestStore(t, db)
	n := 0
	acked.Range(func(k, v any) bool {
		pos, _ := strconv.ParseUint(k.(string), 10, 64)
		for ev, err := range store.ReadAll(pos) {
			if err != nil || ev.Position != pos || ev.Stream != v.(string) {
				t.Errorf("acknowledged position %d (%s): log has %+v, %v", pos, v, ev, err)
			}
			break
		}
		n++
		return true
	})
	t.Logf("%d acknowledged, all in the log; head %d", n, store.Head())
}

// TestEmbeddedOwner is acceptance item 3: an application that embeds the
// store and serves it lets evstore read and exec work from another process
// while it runs (and appends on its own).
func TestEmbeddedOwner(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	app := buildBin(t, "./testdata/embedder")
	db := filepath.Join(dir, "app.db")
	own := startOwner(t, db, app, "-db", db, "-append-every", "5ms")
	for i := 1; i <= 3; i++ {
		if out, errOut, code := cliRun(t, bin, "--db", db, "exec", "counter.increment", `{"counter":"cli"}`); code != 0 {
			t.Fatalf("exec %d: exit %d: %s%s", i, code, out, errOut)
		}
	}
	out, errOut, code := cliRun(t, bin, "--db", db, "read", "counter-cli")
	if code != 0 || strings.Count(out, "counter-cli  v") != 3 {
		t.Fatalf("read: exit %d: %s%s", code, out, errOut)
	}
	if out, _, code := cliRun(t, bin, "--db", db, "log", "--limit", "1", "--from", "1"); code != 0 || out == "" {
		t.Fatalf("log: exit %d", code)
	}
	own.stop(t)
	out, _, code = cliRun(t, bin, "--db", db, "read", "app-ticks")
	if code != 0 || !strings.Contains(out, "Ticked") {
		t.Fatalf("the application's own events are missing (exit %d):\n%s", code, out)
	}
}
