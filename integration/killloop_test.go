package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// longSuites is EVSTORE_LONG=1: the suites' long versions (docs/reliability.md).
func longSuites() bool { return os.Getenv("EVSTORE_LONG") == "1" }

// The bank of the reliability suites: accounts a00.. each funded once, so
// that every later change is a transfer and the total never moves. The
// kill-loop and power-loss suites use few accounts, so that transfers
// collide and retry; the soak uses many, to measure the store rather than
// the collisions.
const (
	bankAccounts = 20
	soakAccounts = 1000
	bankFunding  = 1_000_000
)

// bankAccount is the id of account i.
func bankAccount(i int) string { return fmt.Sprintf("a%02d", i) }

// bankTransfer is a bank.transfer a bankchild started, by idempotency key.
type bankTransfer struct {
	from, to string
	amount   int64
}

func (tr bankTransfer) args() []byte {
	return fmt.Appendf(nil, `{"from":%q,"to":%q,"amount":%d}`, tr.from, tr.to, tr.amount)
}

// bankLedger is what the children said: every transfer started, the
// position of each acknowledged one, those refused.
type bankLedger struct {
	accounts int
	started  map[string]bankTransfer
	acked    map[string]uint64
	refused  map[string]bool
}

func newBankLedger(accounts int) *bankLedger {
	return &bankLedger{accounts: accounts, started: map[string]bankTransfer{}, acked: map[string]uint64{}, refused: map[string]bool{}}
}

// read takes a child's output up to its death.
func (l *bankLedger) read(t testing.TB, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 5 && f[0] == "start":
			amount, _ := strconv.ParseInt(f[4], 10, 64)
			l.started[f[1]] = bankTransfer{f[2], f[3], amount}
		case (len(f) == 3 || len(f) == 4) && f[0] == "ack":
			pos, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Errorf("bad ack line %q", sc.Text())
			}
			l.acked[f[1]] = pos
		case len(f) == 2 && f[0] == "refused":
			l.refused[f[1]] = true
		case len(f) == 1 && f[0] == "ready":
		default:
			t.Errorf("unexpected child output %q", sc.Text())
		}
	}
}

// buildBankChild builds testdata/bankchild.
func buildBankChild(t testing.TB) string {
	t.Helper()
	return buildBin(t, "./testdata/bankchild")
}

// openBank creates the accounts of the suites' bank in a new store, from
// many goroutines so that group commit keeps it quick.
func openBank(t testing.TB, path string, accounts int) {
	t.Helper()
	store, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ex := executor.New(store, executor.Options{})
	reg := commands.Builtin()
	ctx := context.Background()
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range ids {
				if _, err := reg.Run(ctx, ex, "bank.open", fmt.Appendf(nil, `{"account":%q,"owner":"owner %s"}`, id, id)); err != nil {
					t.Error(err)
				}
				if _, err := reg.Run(ctx, ex, "bank.deposit", fmt.Appendf(nil, `{"account":%q,"amount":%d}`, id, bankFunding)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range accounts {
		ids <- bankAccount(i)
	}
	close(ids)
	wg.Wait()
}

// checkBank verifies the invariants of a bank store against what the
// children acknowledged: positions and versions gapless, each transfer both
// of its events or neither (two consecutive positions, same amount), every
// acknowledged transfer at its position, no balance negative, money
// conserved. It returns the number of transfers in the log.
func checkBank(t testing.TB, store *local.Store, l *bankLedger) int {
	t.Helper()
	versions := map[string]uint64{}
	var pos uint64
	var pending *format.Event // a TransferSent waiting for its other half
	transfers := 0
	received := map[uint64]format.Event{}
	sent := map[uint64]format.Event{}
	for ev, err := range store.ReadAll(1) {
		if err != nil {
			t.Fatalf("reading the log: %v", err)
		}
		if pos++; ev.Position != pos {
			t.Fatalf("position %d where %d was due: a gap", ev.Position, pos)
		}
		if versions[ev.Stream]++; ev.Version != versions[ev.Stream] {
			t.Fatalf("%s: version %d where %d was due", ev.Stream, ev.Version, versions[ev.Stream])
		}
		switch ev.Type {
		case commands.EventTransferSent:
			if pending != nil {
				t.Fatalf("position %d: a transfer without its received half", pending.Position)
			}
			e := ev
			pending = &e
			sent[ev.Position] = ev
		case commands.EventTransferReceived:
			if pending == nil || pending.Position != ev.Position-1 {
				t.Fatalf("position %d: a received half without its sent half", ev.Position)
			}
			pending = nil
			transfers++
			received[ev.Position] = ev
		}
	}
	if pending != nil {
		t.Fatalf("position %d: the log ends inside a transfer", pending.Position)
	}
	if pos != store.Head() {
		t.Fatalf("read %d events, head is %d", pos, store.Head())
	}
	for key, at := range l.acked {
		tr := l.started[key]
		r, ok := received[at]
		s := sent[at-1]
		if !ok || r.Stream != "account-"+tr.to || s.Stream != "account-"+tr.from ||
			!strings.Contains(string(r.Data), fmt.Sprintf(`"amount":%d,`, tr.amount)) {
			t.Fatalf("acknowledged transfer %s (%+v) is not at position %d: lost", key, tr, at)
		}
	}
	var total int64
	for i := range l.accounts {
		bal, open, err := commands.Balance(context.Background(), store, bankAccount(i))
		if err != nil || !open || bal < 0 {
			t.Fatalf("account %s: balance %d, open %v, %v", bankAccount(i), bal, open, err)
		}
		total += bal
	}
	if want := int64(l.accounts) * bankFunding; total != want {
		t.Fatalf("money is not conserved: %d cents in all, want %d", total, want)
	}
	return transfers
}

// checkIdempotency runs every started transfer again under its key: an
// acknowledged one must come back as the duplicate it is, at its position;
// one in flight at a kill is committed now unless it already was. Then the
// log must hold exactly one transfer per key.
func checkIdempotency(t testing.TB, path string, l *bankLedger) (inFlightCommitted, inFlightNew int) {
	t.Helper()
	store, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ex := executor.New(store, executor.Options{MaxRetries: 10000})
	reg := commands.Builtin()
	keys := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for key := range keys {
				res, err := reg.Run(context.Background(), ex, "bank.transfer", l.started[key].args(), executor.Idempotent(key))
				mu.Lock()
				switch at, acked := l.acked[key]; {
				case err != nil:
					t.Errorf("transfer %s again: %v", key, err)
				case acked && (!res.Duplicate || res.Position != at):
					t.Errorf("acknowledged transfer %s ran again: duplicate %v, position %d, was %d", key, res.Duplicate, res.Position, at)
				case !acked && res.Duplicate:
					inFlightCommitted++
				case !acked:
					inFlightNew++
				}
				mu.Unlock()
			}
		})
	}
	want := 0
	for key := range l.started {
		if !l.refused[key] {
			want++
			keys <- key
		}
	}
	close(keys)
	wg.Wait()
	if got := checkBank(t, store, l); got != want {
		t.Fatalf("%d transfers in the log for %d keys: idempotency broken", got, want)
	}
	return inFlightCommitted, inFlightNew
}

// TestKillLoop runs the bank workload with 32 clients in a child process
// and SIGKILLs it at random instants: 15 times here, 1,000 with
// EVSTORE_LONG=1 (EVSTORE_KILLS overrides). After each kill (every 50th in
// the long mode) the log must hold every acknowledged transfer, each
// transfer whole or absent, positions and versions gapless and the money
// conserved; at the end every key is run again and must be honoured.
func TestKillLoop(t *testing.T) {
	kills, checkEvery := 15, 1
	if longSuites() {
		kills, checkEvery = 1000, 50
	}
	if n, err := strconv.Atoi(os.Getenv("EVSTORE_KILLS")); err == nil && n > 0 {
		kills = n
	}
	bin := buildBankChild(t)
	path := filepath.Join(t.TempDir(), "bank.db")
	openBank(t, path, bankAccounts)
	ledger := newBankLedger(bankAccounts)
	start := time.Now()
	for k := range kills {
		cmd := exec.Command(bin, "-db", path, "-run", fmt.Sprintf("k%d", k), "-clients", "32", "-accounts", strconv.Itoa(bankAccounts))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		firstAck := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			ledger.read(t, pr)
		}()
		go func() {
			// Copy the child's output, telling when its first ack went by,
			// so that every round commits something before the kill.
			sc := bufio.NewScanner(stdout)
			seen := false
			for sc.Scan() {
				line := sc.Text()
				io.WriteString(pw, line+"\n")
				if !seen && strings.HasPrefix(line, "ack ") {
					seen = true
					close(firstAck)
				}
			}
			pw.Close()
		}()
		exited := make(chan error, 1)
		go func() { <-readDone; exited <- cmd.Wait() }()
		select {
		case <-firstAck:
		case err := <-exited:
			t.Fatalf("kill %d: the child exited by itself (%v): %s", k, err, stderr.String())
		case <-time.After(60 * time.Second): // a deadlock guard
			t.Fatalf("kill %d: no acknowledgement in a minute: %s", k, stderr.String())
		}
		// The random instant: anywhere in the next 0-60 ms of commits.
		time.Sleep(time.Duration(rand.IntN(60_000)) * time.Microsecond)
		cmd.Process.Kill()
		<-exited
		if (k+1)%checkEvery == 0 || k == kills-1 {
			store, err := local.Open(path, local.Options{})
			if err != nil {
				t.Fatalf("after kill %d: %v", k+1, err)
			}
			checkBank(t, store, ledger)
			store.Close()
		}
	}
	committed, fresh := checkIdempotency(t, path, ledger)
	t.Logf("%d kills in %v: %d transfers started, %d acknowledged (all present), %d refused, %d in flight at a kill (%d had committed, %d had not: all-or-nothing held)",
		kills, time.Since(start).Round(time.Second), len(ledger.started), len(ledger.acked), len(ledger.refused), committed+fresh, committed, fresh)
}
