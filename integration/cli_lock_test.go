package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestHundredExecsAtOnce starts 100 short `evstore exec` processes on one
// new database at once. Every one must get the file lock within the lock
// timeout, and no acknowledged command may be lost: one in five fails
// (nothing written), and a failing process that created the file removes
// it again, so the others must follow the path to the file that stays.
func TestHundredExecsAtOnce(t *testing.T) {
	bin := buildCLI(t)
	for round := range 2 {
		db := filepath.Join(t.TempDir(), "busy.db")
		const n = 100
		type outcome struct {
			code int
			out  string
		}
		results := make([]outcome, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				args := []string{"--db", db, "exec", "counter.increment", `{"counter":"c"}`}
				if i%5 == 0 {
					args = []string{"--db", db, "exec", "bank.deposit", fmt.Sprintf(`{"account":"none-%d","amount":1}`, i)}
				}
				var out bytes.Buffer
				cmd := exec.Command(bin, args...)
				if !longSuites() {
					// On an idle machine they all get in within the default
					// second (docs/reliability.md); a CI machine loaded by
					// other test binaries can need longer for 100 processes,
					// whatever the lock does.
					cmd.Env = append(os.Environ(), "EVSTORE_LOCK_TIMEOUT=60s")
				}
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					code = -1
				}
				results[i] = outcome{code, out.String()}
			})
		}
		wg.Wait()
		ok := 0
		for i, r := range results {
			want := 0
			if i%5 == 0 {
				want = 1
			}
			if r.code != want {
				t.Errorf("round %d, exec %d: exit %d, want %d: %s", round, i, r.code, want, r.out)
			}
			if r.code == 0 {
				ok++
			}
		}
		if got := storeHead(t, db); got != uint64(ok) {
			t.Fatalf("round %d: %d execs acknowledged, the database holds %d events", round, ok, got)
		}
	}
}
