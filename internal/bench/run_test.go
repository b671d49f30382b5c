package bench

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// smokeConfig runs every workload at a hundredth of its size, for a few
// seconds in all. Its numbers mean nothing; it proves every path runs.
func smokeConfig(t *testing.T) Config {
	cfg := Config{Dir: t.TempDir(), Clients: 8, NoSync: true}
	cfg.Smoke(false, false)
	cfg.Duration = 200 * time.Millisecond
	// With PostgreSQL at hand (CI sets this), the baseline and the
	// replication workloads run too, each in a schema of its own.
	cfg.Baseline = os.Getenv("EVSTORE_TEST_POSTGRES")
	return cfg
}

func TestBenchSmoke(t *testing.T) {
	cfg := smokeConfig(t)
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out, nil)
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
		if r.Workload == "fleet" {
			// A smoke window is too short to promise shipped events;
			// what counts is that every source ended exact.
			if r.Errors != 0 || !strings.Contains(r.Note, "every source exact") {
				t.Errorf("fleet: %+v", r)
			}
			continue
		}
		if r.Events == 0 || r.EventsPerSec <= 0 || r.PeakRSSMiB <= 0 {
			t.Errorf("%s (%s): no events or no RSS: %+v", r.Workload, r.Store, r)
		}
		if r.Workload == "contention" && (r.Errors != 0 || r.Retries != 0 || r.Extra["final_count"] != r.Extra["expected"]) {
			t.Errorf("contention: %+v", r)
		}
		if strings.HasPrefix(r.Workload, "checkout") || strings.HasPrefix(r.Workload, "growth") {
			if r.Errors != 0 || r.Retries != 0 {
				t.Errorf("%s: %+v", r.Workload, r)
			}
		}
	}
	for _, w := range []string{"seed-single", "seed-multi", "seed-batch", "deposit", "transfer", "contention", "checkout", "checkout-hot", "growth-restock-10", "growth-checkout-500", "read-stream", "read-scan", "projection", "projection-unique", "projection-live", "replicate-rows", "replicate-frames", "fleet"} {
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
