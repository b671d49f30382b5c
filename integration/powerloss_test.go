package integration

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/local"
)

// powerDisk is a small ext4 file system on a loop device. Writes the
// kernel has not yet sent to the device live only in the page cache of
// the mounted file system; fsync sends them to the loop device, which
// writes them into the image file. A copy of the image taken after the
// writer died, while the file system is still mounted (so nothing more is
// flushed), is therefore the disk as a power cut would leave it: what was
// synced, plus whatever unsynced writes the kernel happened to write back.
type powerDisk struct {
	t   *testing.T
	dir string
	img string // the image currently mounted
	mnt string
	n   int
}

// powerTool runs a system tool of the power-loss suite (mkfs, mount, ...).
func powerTool(t *testing.T, name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// newPowerDisk makes and mounts the file system, or skips the test where
// that is impossible (not root, no loop devices, no mkfs.ext4).
func newPowerDisk(t *testing.T) *powerDisk {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("the power-loss suite needs Linux, root and a loop device to mount a scratch ext4 (see docs/reliability.md)")
	}
	d := &powerDisk{t: t, dir: t.TempDir()}
	d.img, d.mnt = filepath.Join(d.dir, "disk-0.img"), filepath.Join(d.dir, "mnt")
	if err := os.Mkdir(d.mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := powerTool(t, "truncate", "-s", "96M", d.img); err != nil {
		t.Skip(err)
	}
	if err := powerTool(t, "mkfs.ext4", "-q", "-F", d.img); err != nil {
		t.Skipf("no ext4 here: %v", err)
	}
	if err := powerTool(t, "mount", "-o", "loop", d.img, d.mnt); err != nil {
		t.Skipf("cannot loop-mount (no loop devices?): %v", err)
	}
	t.Cleanup(func() { powerTool(t, "umount", d.mnt) })
	return d
}

// cut copies the mounted image as it is on the device, unmounts it and
// mounts the copy: the machine "restarts" on what reached the disk.
func (d *powerDisk) cut() {
	d.t.Helper()
	d.n++
	next := filepath.Join(d.dir, fmt.Sprintf("disk-%d.img", d.n))
	src, err := os.Open(d.img)
	if err != nil {
		d.t.Fatal(err)
	}
	dst, err := os.Create(next)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		d.t.Fatal(err)
	}
	src.Close()
	dst.Close()
	if err := powerTool(d.t, "umount", d.mnt); err != nil {
		d.t.Fatal(err)
	}
	os.Remove(d.img)
	d.img = next
	if err := powerTool(d.t, "mount", "-o", "loop", d.img, d.mnt); err != nil {
		d.t.Fatal(err)
	}
}

// runUntilCut starts the bank child on path, lets it commit for a random
// while and kills it, recording what it said in ledger.
func runUntilCut(t *testing.T, bin, path, runID string, nosync bool, ledger *bankLedger) {
	t.Helper()
	args := []string{"-db", path, "-run", runID, "-clients", "32", "-accounts", strconv.Itoa(bankAccounts)}
	if nosync {
		args = append(args, "-nosync")
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := 0
	var lines []string
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(60 * time.Second) // a deadlock guard
	want := 50 + rand.IntN(400)                  // a random instant, in commits
	for acks < want && sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "ack ") {
			acks++
		}
		if time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Kill()
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	cmd.Wait()
	if acks == 0 {
		t.Fatalf("the child acknowledged nothing: %s", stderr.String())
	}
	ledger.read(t, strings.NewReader(strings.Join(lines, "\n")+"\n"))
}

// lostAcks counts acknowledged transfers that are not in the store.
func lostAcks(t *testing.T, path string, l *bankLedger) int {
	store, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatalf("open after the power cut: %v", err)
	}
	defer store.Close()
	at := map[uint64]bool{}
	for ev, err := range store.ReadAll(1) {
		if err != nil {
			t.Fatalf("read after the power cut: %v", err)
		}
		at[ev.Position] = true
	}
	lost := 0
	for _, pos := range l.acked {
		if !at[pos] {
			lost++
		}
	}
	return lost
}

// TestPowerLoss cuts the power under the bank workload (5 times here, 100
// with EVSTORE_LONG=1) and restarts on what reached the disk: every
// acknowledged transfer must be there and every invariant of the kill loop
// hold. A control run with -nosync shows the suite notices a missing fsync.
func TestPowerLoss(t *testing.T) {
	d := newPowerDisk(t)
	bin := buildBankChild(t)
	path := filepath.Join(d.mnt, "bank.db")
	openBank(t, path, bankAccounts)
	rounds := 5
	if longSuites() {
		rounds = 100
	}
	ledger := newBankLedger(bankAccounts)
	for r := range rounds {
		runUntilCut(t, bin, path, fmt.Sprintf("p%d", r), false, ledger)
		d.cut()
		store, err := local.Open(path, local.Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", r+1, err)
		}
		checkBank(t, store, ledger)
		store.Close()
	}
	committed, fresh := checkIdempotency(t, path, ledger)
	t.Logf("%d power cuts: %d transfers started, %d acknowledged (all present), %d in flight (%d had committed, %d had not)",
		rounds, len(ledger.started), len(ledger.acked), committed+fresh, committed, fresh)

	// The control: without fsync, acknowledged transfers must go missing,
	// or the suite could not tell a missing fsync either.
	control := newBankLedger(bankAccounts)
	runUntilCut(t, bin, path, "nosync", true, control)
	d.cut()
	lost := lostAcks(t, path, control)
	t.Logf("control without fsync: %d of %d acknowledged transfers lost at the cut", lost, len(control.acked))
	if lost == 0 {
		t.Log("the control lost nothing: the kernel wrote the pages back before the cut (a sync elsewhere on the machine?), so this run could not have caught a missing fsync")
	}
}
