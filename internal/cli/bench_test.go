package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/evstore/evstore/internal/bench"
	"github.com/urfave/cli/v2"
)

func benchApp(stdout, stderr *bytes.Buffer) *cli.App {
	return newApp(strings.NewReader(""), stdout, stderr)
}

func TestBenchCommandJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := benchApp(&stdout, &stderr).RunContext(context.Background(), []string{
		"evstore", "bench", "--smoke", "--nosync", "--json", "--dir", t.TempDir(), "seed-batch", "read",
	})
	if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
	var rep bench.Report
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
		if err == nil {
			t.Errorf("%v: succeeded, want a usage error", args)
			continue
		}
		if code, msg := describeError(context.Background(), err); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want a usage error", args, code, msg)
		}
	}
}
