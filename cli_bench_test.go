package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// smokeConfig runs every workload at a hundredth of its size, for a few
// seconds in all. Its numbers mean nothing; it proves every path runs.
func smokeConfig(t *testing.T) benchConfig {
	cfg := benchConfig{Dir: t.TempDir(), Clients: 8, NoSync: true}
	applySmoke(&cfg, false, false)
	cfg.Duration = 200 * time.Millisecond
	// With PostgreSQL at hand (CI sets this), the baseline and the
	// replication workloads run too, each in a schema of its own.
	cfg.Baseline = os.Getenv("EVSTORE_TEST_POSTGRES")
	return cfg
}

func TestBenchSmoke(t *testing.T) {
	cfg := smokeConfig(t)
	var out bytes.Buffer
	rep, err := runBench(context.Background(), cfg, &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Workload] = true
		if r.Skipped {
			if cfg.Baseline != "" {
				t.Errorf("%s skipped with a PostgreSQL URL: %s", r.Workload, r.Note)
			}
			continue
		}
		if r.Events == 0 || r.EventsPerSec <= 0 || r.PeakRSSMiB <= 0 {
			t.Errorf("%s (%s): no events or no RSS: %+v", r.Workload, r.Store, r)
		}
		if r.Workload == "contention" && (r.Errors != 0 || r.Extra["final_count"] != r.Extra["expected"]) {
			t.Errorf("contention: %+v", r)
		}
	}
	for _, w := range []string{"seed-single", "seed-multi", "seed-batch", "deposit", "transfer", "contention", "read-stream", "read-scan", "replicate-rows", "replicate-frames"} {
		if !seen[w] {
			t.Errorf("no row for %s", w)
		}
	}
	if cfg.Baseline != "" && len(rep.Ratios) != 2 {
		t.Errorf("ratios: %+v", rep.Ratios)
	}
	table := out.String()
	for _, want := range []string{"NOSYNC", "workload", "seed-single", "p95 ms", "peak RSS MiB", "last/first"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if !t.Failed() {
		t.Logf("\n%s", table)
	}
}

// benchApp is the CLI with the bench command, whether or not main.go lists
// it yet.
func benchApp(stdout, stderr *bytes.Buffer) *cli.App {
	app := newApp(strings.NewReader(""), stdout, stderr)
	if !slices.ContainsFunc(app.Commands, func(c *cli.Command) bool { return c.Name == "bench" }) {
		cmd := benchCommand()
		cmd.OnUsageError = onUsageError
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

func TestBenchCommandJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := benchApp(&stdout, &stderr).RunContext(context.Background(), []string{
		"evstore", "bench", "--smoke", "--nosync", "--json", "--db", t.TempDir(), "seed-batch", "read",
	})
	if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Workload)
	}
	if !slices.Equal(names, []string{"seed-batch", "read-stream", "read-scan"}) || !rep.Config.NoSync || rep.Machine.FsyncP50ms <= 0 {
		t.Fatalf("report: %+v", rep)
	}
}

func TestBenchCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "no-such-workload"},
		{"bench", "seed-batch", "--json"},
		{"bench", "--clients", "0", "seed-batch"},
	} {
		var stdout, stderr bytes.Buffer
		err := benchApp(&stdout, &stderr).RunContext(context.Background(), append([]string{"evstore"}, args...))
		if code, msg := describeError(context.Background(), err); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want a usage error", args, code, msg)
		}
	}
}
