package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/projection"
)

// projectionKills is how often TestKilledProjectionExactlyOnce kills its
// child: 10 by default, 50 with EVSTORE_LONG=1.
func projectionKills() int {
	if os.Getenv("EVSTORE_LONG") == "1" {
		return 50
	}
	return 10
}

// TestKilledProjectionExactlyOnce SIGKILLs, at random instants, a process
// that runs 64 clients of random bank transfers and the commands.Balances
// projection side by side, then restarts it. The projection checks each
// account's versions as it goes, so an event applied twice or skipped
// stops it (and the child, with an error). At the end a last run lets the
// projection catch up and exit cleanly; its balances must equal a fresh
// fold of the log and its checkpoint the head.
func TestKilledProjectionExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	bin := buildBin(t, "./testdata/projector")
	db := filepath.Join(dir, "bank.db")
	const accounts = 20

	// start runs the child and waits for its "ready" line (or its exit).
	start := func(args ...string) (*exec.Cmd, *bytes.Buffer, chan childExit) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-db", db, "-clients", "64", "-accounts", fmt.Sprint(accounts)}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		ready := make(chan bool, 1)
		go func() { ready <- lines.Scan() && lines.Text() == "ready" }()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Wait()
				t.Fatalf("the child stopped before it was ready:\n%s", stderr.String())
			}
		case <-time.After(2 * time.Minute): // a deadlock guard, not a timing check
			cmd.Process.Kill()
			t.Fatalf("the child was not ready within 2 minutes:\n%s", stderr.String())
		}
		exited := make(chan childExit, 1)
		go func() {
			var rest []string
			for lines.Scan() {
				rest = append(rest, lines.Text())
			}
			io.Copy(io.Discard, stdout)
			err := cmd.Wait()
			exited <- childExit{err: err, lines: rest}
		}()
		return cmd, &stderr, exited
	}

	kills := projectionKills()
	var positions []uint64
	for i := range kills {
		cmd, stderr, exited := start()
		// A random instant: in catch-up, mid-transfer, mid-commit.
		alive := time.Duration(rand.IntN(250)) * time.Millisecond
		select {
		case ex := <-exited:
			t.Fatalf("kill %d: the child exited by itself (%v):\n%s", i, ex.err, stderr.String())
		case <-time.After(alive):
		}
		cmd.Process.Kill() // SIGKILL: no deferred cleanup, no graceful close
		<-exited
		if strings.TrimSpace(stderr.String()) != "" {
			t.Fatalf("kill %d: the child reported:\n%s", i, stderr.String())
		}
		positions = append(positions, positionIn(t, db))
	}

	// Last run: the clients stop after a while, the projection catches up
	// and the child exits cleanly.
	_, stderr, exited := start("-settle", "300ms")
	ex := <-exited
	settled := strings.Join(ex.lines, "\n")
	if ex.err != nil || !strings.HasPrefix(settled, "settled ") {
		t.Fatalf("the settling run: %v, %q:\n%s", ex.err, settled, stderr.String())
	}

	store := openTestStore(t, db)
	ctx := context.Background()
	head := store.Head()
	pos, err := projection.Position(store, commands.BalancesName)
	if err != nil || pos != head {
		t.Fatalf("checkpoint %d (%v), head %d", pos, err, head)
	}
	if settled != fmt.Sprintf("settled %d", head) {
		t.Errorf("the child settled at %q, the head is %d", settled, head)
	}
	var total int64
	for i := range accounts {
		id := fmt.Sprintf("a%d", i)
		folded, err := commands.ReadAccount(ctx, store, id)
		if err != nil {
			t.Fatal(err)
		}
		projected, err := commands.ProjectedBalance(store, id)
		if err != nil {
			t.Fatal(err)
		}
		if projected.Balance != folded.Balance || projected.Version != folded.Version || !projected.Open {
			t.Errorf("account %s: projected balance %d at v%d, the log folds to %d at v%d", id, projected.Balance, projected.Version, folded.Balance, folded.Version)
		}
		total += projected.Balance
	}
	if total != accounts*100000 {
		t.Errorf("projected balances sum to %d, want %d", total, accounts*100000)
	}
	in, err := projection.Status(store, commands.BalancesName)
	if err != nil || in.State != projection.StateCaughtUp || in.Error != "" {
		t.Errorf("status %+v, %v", in, err)
	}
	t.Logf("%d kills; checkpoint after each: %v; final head %d", kills, positions, head)
}

// childExit is how a child ended and what it printed after "ready".
type childExit struct {
	err   error
	lines []string
}

// positionIn reads the projection's checkpoint from the file between runs.
func positionIn(t *testing.T, db string) uint64 {
	t.Helper()
	s := openTestStore(t, db)
	defer s.Close()
	pos, err := projection.Position(s, commands.BalancesName)
	if err != nil {
		t.Fatal(err)
	}
	if head := s.Head(); pos > head {
		t.Fatalf("checkpoint %d past the head %d", pos, head)
	}
	return pos
}
