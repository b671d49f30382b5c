package integration

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evstore/evstore/local"
)

// childRSS is the resident set of process pid in bytes (Linux): all of it,
// and the part that is anonymous memory (heap, stacks) rather than pages
// of the mapped database file, which the kernel can drop at will.
func childRSS(pid int) (total, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			total = kb << 10
		case "RssAnon":
			anon = kb << 10
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return total, anon, nil
}

// machineLoad is the machine's one-minute load average: the machine is shared,
// and latency means little without it.
func machineLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// TestSoak runs the bank workload with 64 clients in a child for a fixed
// time (1 min here, 10 min with EVSTORE_LONG=1, EVSTORE_SOAK overrides) and
// samples the child's RSS, the machine's load, the p50/p99 latency of the transfers finished in
// each interval and the file's size into a CSV (EVSTORE_SOAK_OUT, else a
// temporary file). docs/reliability.md shows the long run, plotted by
// tools/soakplot. Timing is recorded, never asserted; the bank's invariants
// are checked at the end.
func TestSoak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("samples RSS from /proc")
	}
	duration, every := time.Minute, 2*time.Second
	if longSuites() {
		duration, every = 10*time.Minute, 5*time.Second
	}
	if d, err := time.ParseDuration(os.Getenv("EVSTORE_SOAK")); err == nil {
		duration = d
	}
	out := os.Getenv("EVSTORE_SOAK_OUT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "soak.csv")
	}
	bin := buildBankChild(t)
	path := filepath.Join(t.TempDir(), "soak.db")
	openBank(t, path, soakAccounts)
	cmd := exec.Command(bin, "-db", path, "-run", "soak", "-clients", "64", "-accounts", strconv.Itoa(soakAccounts), "-latency")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		lat      []int64 // microseconds, this interval
		acks     int64   // all so far
		lastPos  uint64
		readDone = make(chan struct{})
	)
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 && f[0] == "ack" {
				us, _ := strconv.ParseInt(f[3], 10, 64)
				pos, _ := strconv.ParseUint(f[2], 10, 64)
				mu.Lock()
				lat = append(lat, us)
				acks++
				lastPos = max(lastPos, pos)
				mu.Unlock()
			}
		}
	}()

	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"elapsed_s", "transfers", "transfers_per_s", "p50_ms", "p99_ms", "rss_mb", "rss_anon_mb", "file_mb", "events", "file_bytes_per_event", "loadavg1"})
	start := time.Now()
	prevAcks := int64(0)
	var rssSamples []int64
	tick := time.NewTicker(every)
	defer tick.Stop()
	for now := range tick.C {
		mu.Lock()
		sample, n, pos := lat, acks, lastPos
		lat = nil
		mu.Unlock()
		rss, anon, err := childRSS(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("the child is gone? %v: %s", err, stderr.String())
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(sample)
		pct := func(p float64) float64 {
			if len(sample) == 0 {
				return 0
			}
			return float64(sample[min(len(sample)-1, int(p*float64(len(sample))))]) / 1000
		}
		perEvent := 0.0
		if pos > 0 {
			perEvent = float64(info.Size()) / float64(pos)
		}
		el := now.Sub(start).Seconds()
		w.Write([]string{
			strconv.FormatFloat(el, 'f', 1, 64), strconv.FormatInt(n, 10),
			strconv.FormatFloat(float64(n-prevAcks)/every.Seconds(), 'f', 0, 64),
			strconv.FormatFloat(pct(0.50), 'f', 2, 64), strconv.FormatFloat(pct(0.99), 'f', 2, 64),
			strconv.FormatFloat(float64(rss)/(1<<20), 'f', 1, 64), strconv.FormatFloat(float64(anon)/(1<<20), 'f', 1, 64),
			strconv.FormatFloat(float64(info.Size())/(1<<20), 'f', 1, 64),
			strconv.FormatUint(pos, 10), strconv.FormatFloat(perEvent, 'f', 0, 64), machineLoad(),
		})
		w.Flush()
		rssSamples = append(rssSamples, anon)
		prevAcks = n
		if now.Sub(start) >= duration {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-readDone
	cmd.Wait()
	f.Close()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	if acks == 0 {
		t.Fatalf("no transfer finished: %s", stderr.String())
	}
	store, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	checkBank(t, store, newBankLedger(soakAccounts))
	t.Logf("soak %v, 64 clients: %d transfers, anonymous RSS %.1f MiB at a quarter of the run and %.1f MiB at the end; samples in %s",
		duration, acks, float64(rssSamples[len(rssSamples)/4])/(1<<20), float64(rssSamples[len(rssSamples)-1])/(1<<20), out)
}
