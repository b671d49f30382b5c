package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

// runDaemon runs a long-running command (replicate, expand), which logs to
// stderr even when it succeeds.
func runDaemon(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	code := Run(ctx, append([]string{"evstore"}, args...), strings.NewReader(""), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func TestReplicateUsage(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	missing := tempDB(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no --to", []string{"--db", db, "replicate", "--once"}, 2, "--to postgres://… is required"},
		{"bad layout", []string{"--db", db, "replicate", "--to", "postgres://x/y", "--layout", "zip"}, 2, "replicate: "},
		{"bad batch", []string{"--db", db, "replicate", "--to", "postgres://x/y", "--batch-events", "0"}, 2, "must be positive"},
		{"extra argument", []string{"--db", db, "replicate", "--to", "postgres://x/y", "now"}, 2, "replicate"},
		{"malformed URL", []string{"--db", db, "replicate", "--to", "postgres://u:s3cret@h:abc/db"}, 2, "not a usable PostgreSQL URL"},
		{"malformed URL for status", []string{"--db", db, "status", "--to", "postgres://u:s3cret@h:abc/db"}, 2, "not a usable PostgreSQL URL"},
		{"missing database", []string{"--db", missing, "replicate", "--to", "postgres://x/y"}, 1, missing},
		{"take-over alone", []string{"--db", db, "replicate", "--to", "postgres://x/y", "--take-over"}, 2, "--take-over only applies with --new-source"},
		{"retry-for without once", []string{"--db", db, "replicate", "--to", "postgres://x/y", "--retry-for", "1m"}, 2, "--retry-for only applies with --once"},
		{"negative retry-for", []string{"--db", db, "replicate", "--to", "postgres://x/y", "--once", "--retry-for", "-1s"}, 2, "--retry-for must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			r.want(t, tt.code, nil, []string{tt.stderr})
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("password printed: %s", r.stderr)
			}
		})
	}
	noFile(t, missing)
}

func TestReplicateUnreachableServerHint(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	r := runCLI(t, "", "--db", db, "status", "--to", "postgres://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2")
	r.want(t, 1, nil, []string{"cannot connect to PostgreSQL", "check that the server is running"})
	if strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("password printed: %s", r.stderr)
	}
}

// TestReplicateOnceThenStatus replicates the bank example, checks
// PostgreSQL holds it, and watches the lag go up and back to zero.
func TestReplicateOnceThenStatus(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	if r := runCLI(t, "", "--db", db, "exec", "-f", "../../examples/bank.jsonl"); r.code != 0 {
		t.Fatalf("example: %s", r.stderr)
	}
	replicateOnce := func() {
		t.Helper()
		r := runDaemon(t, context.Background(), "--db", db, "replicate", "--once", "--to", url, "--schema", schema, "--source", "till-1")
		if r.code != 0 {
			t.Fatalf("replicate exited %d: %s", r.code, r.stderr)
		}
	}
	status := func() replicate.StatusInfo {
		t.Helper()
		r := runCLI(t, "", "--db", db, "status", "--json", "--to", url, "--schema", schema, "--source", "till-1")
		if r.code != 0 {
			t.Fatalf("status exited %d: %s", r.code, r.stderr)
		}
		var info replicate.StatusInfo
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			t.Fatalf("status --json: %v: %s", err, r.stdout)
		}
		return info
	}
	replicateOnce()
	conn := pgtest.Conn(t, url)
	var n, amount int64
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+schema+".events WHERE source = 'till-1'").Scan(&n); err != nil || n != int64(head(t, db)) {
		t.Fatalf("PostgreSQL has %d events (err %v), the log %d", n, err, head(t, db))
	}
	if err := conn.QueryRow(context.Background(), "SELECT (data->>'amount')::bigint FROM "+schema+".events WHERE source = 'till-1' AND type = 'Deposited' ORDER BY position LIMIT 1").Scan(&amount); err != nil || amount != 10000 {
		t.Fatalf("first deposit amount %d, err %v", amount, err)
	}
	if info := status(); info.LagEvents != 0 || info.Replicated != info.LocalHead || info.LocalHead != 12 {
		t.Fatalf("after replicating: %+v", info)
	}
	mustExec(t, db, [2]string{"bank.deposit", `{"account":"alice","amount":1}`}, [2]string{"bank.deposit", `{"account":"bob","amount":1}`})
	if info := status(); info.LagEvents != 2 || info.LagSeconds <= 0 {
		t.Fatalf("lag not reported: %+v", info)
	}
	replicateOnce()
	if info := status(); info.LagEvents != 0 || info.Replicated != 14 {
		t.Fatalf("lag did not return to zero: %+v", info)
	}
	// The readable form says the same.
	r := runCLI(t, "", "--db", db, "status", "--to", url, "--schema", schema, "--source", "till-1")
	r.want(t, 0, []string{"local head  14", "replicated  14 (lag 0 events"}, nil)
}

func TestReplicateFollowsAndStopsOnSignal(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := runDaemon(t, ctx, "--db", db, "replicate", "--to", url, "--schema", schema, "--source", "follow", "--flush-interval", "50ms")
	// An interrupted follower (SIGINT/SIGTERM cancel the same context)
	// exits 0 after it shipped what it had.
	if r.code != 0 || !strings.Contains(r.stderr, "caught up") {
		t.Fatalf("follow mode exited %d: %s", r.code, r.stderr)
	}
	var n int64
	if err := pgtest.Conn(t, url).QueryRow(context.Background(), "SELECT position FROM "+schema+".sources WHERE name = 'follow'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("source position %d, err %v", n, err)
	}
}

// TestProgressOnTerminal drives the progress bar that a terminal gets: it
// shows the source, the count against the head, and keeps up when the head
// grows during catch-up.
func TestProgressOnTerminal(t *testing.T) {
	var out strings.Builder
	bar := newReplicateBar(&out)
	bar.update(replicate.ProgressInfo{Source: "till-1", Start: 0, Position: 0, Head: 1000})
	bar.update(replicate.ProgressInfo{Source: "till-1", Start: 0, Position: 500, Head: 1000, Events: 500})
	bar.update(replicate.ProgressInfo{Source: "till-1", Start: 0, Position: 1500, Head: 1500, Events: 1000, CaughtUp: true})
	bar.finish()
	got := out.String()
	for _, want := range []string{"replicating till-1", "1500/1500", "events"} {
		if !strings.Contains(got, want) {
			t.Errorf("progress output lacks %q:\n%q", want, got)
		}
	}
}

// TestProgressOffTerminal checks the log lines that replace the bar in logs
// and pipes: one per interval while there is progress, none when idle.
func TestProgressOffTerminal(t *testing.T) {
	var m replicate.Metrics
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		logProgress(ctx, slog.New(slog.NewTextHandler(&out, nil)), &m, 10*time.Millisecond)
		close(done)
	}()
	m.HeadPosition.Store(100)
	m.ReplicatedPosition.Store(40)
	for !strings.Contains(out.String(), "lag_events=60") {
		time.Sleep(5 * time.Millisecond)
	}
	m.ReplicatedPosition.Store(100)
	for !strings.Contains(out.String(), "position=100") {
		time.Sleep(5 * time.Millisecond)
	}
	lines := strings.Count(out.String(), "replication progress")
	time.Sleep(50 * time.Millisecond) // five intervals, idle and caught up
	if got := strings.Count(out.String(), "replication progress"); got != lines {
		t.Fatalf("logged while idle and caught up: %d lines, then %d:\n%s", lines, got, out.String())
	}
	cancel()
	<-done
}

// syncBuffer is a strings.Builder safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMetricsShowLagGoingToZero runs the follower with --metrics-addr and
// scrapes it until the replicated position reaches the head and the lag
// reads zero.
func TestMetricsShowLagGoingToZero(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	for range 5 {
		mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- runDaemon(t, ctx, "--db", db, "replicate", "--to", url, "--schema", schema, "--source", "metrics", "--metrics-addr", addr)
	}()
	want := []string{
		`evstore_replicate_head_position{source="metrics"} 5`,
		`evstore_replicate_replicated_position{source="metrics"} 5`,
		`evstore_replicate_lag_events{source="metrics"} 0`,
		`evstore_replicate_lag_seconds{source="metrics"} 0`,
	}
	var body string
	for attempt := 0; ; attempt++ {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if containsAll(body, want) {
				break
			}
		}
		if attempt == 200 {
			cancel()
			t.Fatalf("metrics never showed the lag at zero:\n%s\nreplicator: %+v", body, <-done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if r := <-done; r.code != 0 {
		t.Fatalf("replicator exited %d: %s", r.code, r.stderr)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// lastLine is the "evstore: ..." line a daemon command ends with on failure,
// after its log.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestReplicateOnceEnds: --once must end, and say how, so cron can tell:
// exit 1 after --retry-for when PostgreSQL is unreachable, exit 1 at once
// when the server refuses for good (an unknown URL setting), exit 1 when
// interrupted (SIGTERM cancels the same context) before it caught up.
func TestReplicateOnceEnds(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard: every case ends on its own
	defer cancel()
	unreachable := "postgres://postgres:s3cret@127.0.0.1:1/test?connect_timeout=2"
	r := runDaemon(t, ctx, "--db", db, "replicate", "--once", "--to", unreachable, "--retry-for", "300ms")
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), "evstore: replicate: ") ||
		!containsAll(lastLine(r.stderr), []string{"gave up replicating", "(--retry-for)", "connection refused"}) || strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("unreachable: exit %d, stderr:\n%s", r.code, r.stderr)
	}

	if url := os.Getenv(pgtest.EnvVar); url != "" {
		r = runDaemon(t, ctx, "--db", db, "replicate", "--once", "--to", url+"&no_such_setting=1", "--retry-for", "0")
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), `unrecognized configuration parameter "no_such_setting"`) {
			t.Fatalf("permanent refusal: exit %d, stderr:\n%s", r.code, r.stderr)
		}
	}

	ictx, icancel := context.WithCancel(ctx)
	done := make(chan result, 1)
	var out syncBuffer
	go func() {
		code := Run(ictx, []string{"evstore", "--db", db, "replicate", "--once", "--to", unreachable, "--retry-for", "0"},
			strings.NewReader(""), io.Discard, &out)
		done <- result{code: code}
	}()
	for !strings.Contains(out.String(), "retrying") {
		if ctx.Err() != nil {
			t.Fatalf("replicate never retried:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	icancel()
	if r := <-done; r.code != 1 || !strings.Contains(lastLine(out.String()), "interrupted before catching up") {
		t.Fatalf("interrupted: exit %d, stderr:\n%s", r.code, out.String())
	}
}

// TestStatusSaysWhatReplicateSays: on a log that diverged from PostgreSQL,
// status exits 1 with replicate's reason instead of printing a lag.
func TestStatusSaysWhatReplicateSays(t *testing.T) {
	url, schema := pgtest.Schema(t)
	dir := t.TempDir()
	db, backup := filepath.Join(dir, "events.db"), filepath.Join(dir, "backup.db")
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	copyFile(t, db, backup)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	if r := runDaemon(t, context.Background(), "--db", db, "replicate", "--once", "--to", url, "--schema", schema, "--source", "d"); r.code != 0 {
		t.Fatalf("replicate: %d %s", r.code, r.stderr)
	}
	copyFile(t, backup, db)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"other"}`}, [2]string{"counter.increment", `{"counter":"other"}`})
	rep := runDaemon(t, context.Background(), "--db", db, "replicate", "--once", "--to", url, "--schema", schema, "--source", "d")
	st := runCLI(t, "", "--db", db, "status", "--to", url, "--schema", schema, "--source", "d")
	if rep.code != 1 || st.code != 1 || !strings.Contains(lastLine(rep.stderr), "have diverged") || !strings.Contains(st.stderr, "have diverged") ||
		strings.Contains(st.stdout, "lag") {
		t.Fatalf("replicate: %d %s\nstatus: %d %s %s", rep.code, lastLine(rep.stderr), st.code, st.stdout, st.stderr)
	}
}

// TestStatusOfFrames: the default source name is found by status as by
// replicate, and status asks for expand only while frames are unexpanded.
func TestStatusOfFrames(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`}, [2]string{"counter.increment", `{"counter":"c"}`})
	if r := runDaemon(t, context.Background(), "--db", db, "replicate", "--once", "--layout", "frames", "--to", url, "--schema", schema); r.code != 0 {
		t.Fatalf("replicate: %d %s", r.code, r.stderr)
	}
	runCLI(t, "", "--db", db, "status", "--to", url, "--schema", schema).
		want(t, 0, []string{"layout frames", "replicated  2 (lag 0 events", "expanded    0 (2 events only in frames yet: run 'evstore expand')"}, nil)
	if r := runDaemon(t, context.Background(), "expand", "--once", "--to", url, "--schema", schema); r.code != 0 {
		t.Fatalf("expand: %d %s", r.code, r.stderr)
	}
	r := runCLI(t, "", "--db", db, "status", "--to", url, "--schema", schema)
	r.want(t, 0, []string{"expanded    2 (all)"}, nil)
	if strings.Contains(r.stdout, "evstore expand") {
		t.Fatalf("status asks for expand when all is expanded:\n%s", r.stdout)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
