package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/internal/testutil"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestFleetView runs `evstore fleet` (the real binary) on a fleet of two
// tills through pgbouncer: one follows its log (`evstore replicate`, with
// a fast heartbeat) and gets a new event through its socket; the other
// replicated once and then went silent (its last contact moved an hour
// back, as a till switched off would leave it). The follower must show
// its head and no lag, the silent till must be flagged.
func TestFleetView(t *testing.T) {
	direct, schema := pgtest.Schema(t)
	b := pgtest.StartBouncer(t, pgtest.BouncerOptions{PoolSize: 2})
	url := b.URL()
	bin := evstoreBin(t)
	dir := t.TempDir()
	live, silent := filepath.Join(dir, "live.db"), filepath.Join(dir, "silent.db")
	for _, db := range []string{live, silent} {
		for range 3 {
			if _, errOut, code := cliRun(t, bin, "--db", db, "exec", "counter.increment", `{"counter":"c"}`); code != 0 {
				t.Fatalf("exec: %d %s", code, errOut)
			}
		}
	}
	if _, errOut, code := cliRun(t, bin, "--db", silent, "replicate", "--once", "--to", url, "--schema", schema, "--source", "till-silent"); code != 0 {
		t.Fatalf("replicate --once: %d %s", code, errOut)
	}
	conn := pgtest.Conn(t, direct)
	if _, err := conn.Exec(context.Background(), "UPDATE "+ident(schema)+".sources SET last_seen = now() - interval '1 hour' WHERE name = 'till-silent'"); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	rep := exec.Command(bin, "--db", live, "replicate", "--to", url, "--schema", schema, "--source", "till-live",
		"--heartbeat", "200ms", "--idle-timeout", "100ms", "--flush-interval", "10ms")
	rep.Env = append(os.Environ(), "EVSTORE_DB=", "EVSTORE_PG_URL=")
	rep.Stdout, rep.Stderr = &out, &out
	if err := rep.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- rep.Wait() }()
	defer func() {
		rep.Process.Signal(os.Interrupt)
		if err := <-exited; err != nil {
			t.Errorf("replicate: %v\n%s", err, out.String())
		}
	}()

	type entry struct {
		Source     string  `json:"source"`
		Replicated uint64  `json:"replicated"`
		DeviceHead uint64  `json:"device_head"`
		LagEvents  uint64  `json:"lag_events"`
		SilentFor  float64 `json:"silent_seconds"`
		Silent     bool    `json:"silent"`
		Holder     string  `json:"holder"`
		Version    string  `json:"version"`
	}
	fleet := func() map[string]entry {
		stdout, errOut, code := cliRun(t, bin, "fleet", "--to", url, "--schema", schema, "--json", "--silent-after", "1m")
		if code != 0 {
			t.Fatalf("fleet: %d %s", code, errOut)
		}
		var list []entry
		if err := json.Unmarshal([]byte(stdout), &list); err != nil {
			t.Fatalf("fleet --json: %v\n%s", err, stdout)
		}
		m := map[string]entry{}
		for _, e := range list {
			m[e.Source] = e
		}
		return m
	}
	testutil.WaitFor(t, time.Minute, "the follower shipped and heartbeats", func() bool {
		e := fleet()["till-live"]
		return e.Replicated == 3 && e.DeviceHead == 3 && e.Holder != ""
	})
	// A new event goes through the follower's socket and gets shipped.
	if _, errOut, code := cliRun(t, bin, "--db", live, "exec", "counter.increment", `{"counter":"c"}`); code != 0 {
		t.Fatalf("exec through the follower: %d %s", code, errOut)
	}
	testutil.WaitFor(t, time.Minute, "the new event shipped", func() bool {
		e := fleet()["till-live"]
		return e.Replicated == 4 && e.DeviceHead == 4
	})
	m := fleet()
	if e := m["till-live"]; e.Silent || e.LagEvents != 0 || e.Version == "" {
		t.Fatalf("follower: %+v", e)
	}
	if e := m["till-silent"]; !e.Silent || e.SilentFor < 3500 || e.Replicated != 3 || e.Holder != "" {
		t.Fatalf("silent till: %+v", e)
	}
	stdout, _, code := cliRun(t, bin, "fleet", "--to", url, "--schema", schema)
	if code != 0 || !strings.Contains(stdout, "SILENT") || strings.Count(stdout, "SILENT") != 1 || !strings.Contains(stdout, "2 sources, 1 silent") {
		t.Fatalf("fleet text output:\n%s", stdout)
	}
	t.Logf("\n%s", stdout)
}
