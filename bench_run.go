package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/evstore/evstore/local"
)

// benchConfig is what `evstore bench` was asked to do.
type benchConfig struct {
	Workloads  []string      `json:"workloads"`
	Dir        string        `json:"dir,omitempty"` // parent of the temporary stores; "" is the system temp dir
	Duration   time.Duration `json:"duration_ns"`   // of the timed workloads (deposit, transfer)
	Clients    int           `json:"clients"`
	JSON       bool          `json:"-"`
	Baseline   string        `json:"-"` // PostgreSQL URL; kept out of the output, it may hold a password
	To         string        `json:"-"` // replication target URL; defaults to Baseline
	NoSync     bool          `json:"nosync"`
	Scale      float64       `json:"scale"` // multiplies every workload's size, for smoke tests
	CPUProfile string        `json:"-"`
	// BaselineConns is the PostgreSQL connection count; 0 means one per
	// client, which is what a pool sized for the clients would open.
	BaselineConns int `json:"baseline_conns,omitempty"`
}

// benchWorkloads lists the workloads in the order a full run executes them.
var benchWorkloads = []string{
	"seed-single", "seed-multi", "seed-batch", "deposit", "transfer",
	"contention", "read", "replicate-rows", "replicate-frames",
}

// benchResult is one row of the table.
type benchResult struct {
	Workload     string             `json:"workload"`
	Store        string             `json:"store"` // "evstore" or "postgres"
	Ops          int64              `json:"ops"`
	Events       int64              `json:"events"`
	Seconds      float64            `json:"seconds"`
	OpsPerSec    float64            `json:"ops_per_sec"`
	EventsPerSec float64            `json:"events_per_sec"`
	P50ms        float64            `json:"p50_ms"`
	P95ms        float64            `json:"p95_ms"`
	P99ms        float64            `json:"p99_ms"`
	Retries      int64              `json:"retries"`
	Errors       int64              `json:"errors"`
	PeakRSSMiB   float64            `json:"peak_rss_mib"`
	Extra        map[string]float64 `json:"extra,omitempty"`
	Note         string             `json:"note,omitempty"`
	Skipped      bool               `json:"skipped,omitempty"`
}

// benchRatio compares evstore with the PostgreSQL baseline on one workload.
type benchRatio struct {
	Workload string  `json:"workload"`
	OpsRatio float64 `json:"ops_ratio"` // evstore ops/s ÷ baseline ops/s
	P95Ratio float64 `json:"p95_ratio"` // evstore p95 ÷ baseline p95
	Evstore  float64 `json:"evstore"`   // ops/s
	Postgres float64 `json:"postgres"`  // ops/s
	Durable  bool    `json:"durable"`   // false under --nosync
}

type benchReport struct {
	Config  benchConfig   `json:"config"`
	Machine benchMachine  `json:"machine"`
	Results []benchResult `json:"results"`
	Ratios  []benchRatio  `json:"benchRatios,omitempty"`
}

type benchMachine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	Durable   bool   `json:"durable"`
	// FsyncP50ms and FsyncP99ms are the latency of one 4 KiB overwrite
	// plus fsync in the bench directory: the floor under every durable
	// commit, which makes two.
	FsyncP50ms float64 `json:"fsync_p50_ms"`
	FsyncP99ms float64 `json:"fsync_p99_ms"`
}

// benchSample collects one client's measurements; clients never share one, so
// recording needs no lock.
type benchSample struct {
	lat     []time.Duration
	retries int64
	errors  int64
	events  int64
	err     error // the first error, for the note

	// For timed clients (see runBenchClients).
	deadline time.Time
	ctx      context.Context
}

func (s *benchSample) record(d time.Duration, events, retries int, err error) {
	s.lat = append(s.lat, d)
	s.retries += int64(retries)
	if err != nil {
		s.errors++
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.events += int64(events)
}

// benchSummarize turns the clients' samples into a row measured over elapsed.
func benchSummarize(workload, store string, elapsed time.Duration, samples ...*benchSample) benchResult {
	r := benchResult{Workload: workload, Store: store, Seconds: elapsed.Seconds()}
	var all []time.Duration
	var firstErr error
	for _, s := range samples {
		all = append(all, s.lat...)
		r.Retries += s.retries
		r.Errors += s.errors
		r.Events += s.events
		if firstErr == nil {
			firstErr = s.err
		}
	}
	r.Ops = int64(len(all)) - r.Errors
	if elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / elapsed.Seconds()
		r.EventsPerSec = float64(r.Events) / elapsed.Seconds()
	}
	slices.Sort(all)
	r.P50ms, r.P95ms, r.P99ms = benchQuantileMs(all, 0.50), benchQuantileMs(all, 0.95), benchQuantileMs(all, 0.99)
	if firstErr != nil {
		r.Note = "first error: " + firstErr.Error()
	}
	return r
}

// benchQuantileMs reads a quantile of sorted latencies by the nearest-rank method.
func benchQuantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// benchEnv is what every workload gets: where to put its store and how to
// open it.
type benchEnv struct {
	cfg   benchConfig
	dir   string
	log   io.Writer // progress, to stderr so --json output stays clean
	count int
}

// scaled applies --scale to a workload size, never below min.
func (e *benchEnv) scaled(n, min int) int {
	return max(int(math.Round(float64(n)*e.cfg.Scale)), min)
}

// openStore creates a fresh store for one workload; cleanup closes and
// deletes it.
func (e *benchEnv) openStore(name string) (*local.Store, func(), error) {
	e.count++
	path := filepath.Join(e.dir, fmt.Sprintf("%02d-%s.db", e.count, name))
	s, err := local.Open(path, local.Options{NoSync: e.cfg.NoSync})
	if err != nil {
		return nil, nil, err
	}
	return s, func() {
		s.Close()
		os.Remove(path)
	}, nil
}

func (e *benchEnv) logf(format string, v ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", v...)
}

// runBench runs cfg's workloads and writes the table (or JSON) to out.
// Progress goes to progress, which may be io.Discard.
func runBench(ctx context.Context, cfg benchConfig, out, progress io.Writer) (*benchReport, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 64
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Scale <= 0 {
		cfg.Scale = 1
	}
	if cfg.To == "" {
		cfg.To = cfg.Baseline
	}
	if len(cfg.Workloads) == 0 {
		cfg.Workloads = benchWorkloads
	}
	for _, w := range cfg.Workloads {
		if !slices.Contains(benchWorkloads, w) {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", w, strings.Join(benchWorkloads, ", "))
		}
	}
	dir, err := os.MkdirTemp(cfg.Dir, "evstore-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)

	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	if progress == nil {
		progress = io.Discard
	}
	env := &benchEnv{cfg: cfg, dir: dir, log: progress}
	rep := &benchReport{
		Config:  cfg,
		Machine: benchMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Durable: !cfg.NoSync},
	}
	if rep.Machine.FsyncP50ms, rep.Machine.FsyncP99ms, err = probeFsync(dir, env.scaled(200, 10)); err != nil {
		return nil, fmt.Errorf("bench: fsync probe: %w", err)
	}
	var pg *pgBaseline
	if cfg.Baseline != "" && (slices.Contains(cfg.Workloads, "deposit") || slices.Contains(cfg.Workloads, "transfer")) {
		if pg, err = openPGBaseline(ctx, cfg.Baseline); err != nil {
			return nil, err
		}
		defer pg.close()
	}
	for _, w := range cfg.Workloads {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		env.logf("%s…", w)
		rows, err := runBenchWorkload(ctx, env, pg, w)
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", w, err)
		}
		rep.Results = append(rep.Results, rows...)
	}
	rep.Ratios = benchRatios(rep.Results, !cfg.NoSync)
	if cfg.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return rep, enc.Encode(rep)
	}
	return rep, writeBenchTable(out, rep)
}

// runBenchWorkload runs one workload with the heap trimmed and the peak RSS reset
// first, so each row's RSS is its own.
func runBenchWorkload(ctx context.Context, env *benchEnv, pg *pgBaseline, w string) ([]benchResult, error) {
	var rows []benchResult
	run := func(store string, fn func() ([]benchResult, error)) error {
		debug.FreeOSMemory()
		benchResetPeakRSS()
		got, err := fn()
		rss := benchPeakRSSMiB()
		for i := range got {
			got[i].Store = store
			got[i].PeakRSSMiB = rss
		}
		rows = append(rows, got...)
		return err
	}
	var err error
	switch w {
	case "seed-single":
		err = run("evstore", func() ([]benchResult, error) { return benchSeedSingle(ctx, env) })
	case "seed-multi":
		err = run("evstore", func() ([]benchResult, error) { return benchSeedMulti(ctx, env) })
	case "seed-batch":
		err = run("evstore", func() ([]benchResult, error) { return benchSeedBatch(ctx, env) })
	case "deposit", "transfer":
		err = run("evstore", func() ([]benchResult, error) { return benchBank(ctx, env, w) })
		if err == nil && pg != nil {
			err = run("postgres", func() ([]benchResult, error) { return pg.bench(ctx, env, w) })
		}
	case "contention":
		err = run("evstore", func() ([]benchResult, error) { return benchContention(ctx, env) })
	case "read":
		err = run("evstore", func() ([]benchResult, error) { return benchRead(ctx, env) })
	case "replicate-rows", "replicate-frames":
		err = run("evstore", func() ([]benchResult, error) { return benchReplicate(ctx, env, w) })
	}
	return rows, err
}

func benchRatios(results []benchResult, durable bool) []benchRatio {
	var out []benchRatio
	for _, pgRow := range results {
		if pgRow.Store != "postgres" || pgRow.OpsPerSec == 0 {
			continue
		}
		for _, ev := range results {
			if ev.Store == "evstore" && ev.Workload == pgRow.Workload {
				r := benchRatio{Workload: ev.Workload, OpsRatio: ev.OpsPerSec / pgRow.OpsPerSec, Evstore: ev.OpsPerSec, Postgres: pgRow.OpsPerSec, Durable: durable}
				if pgRow.P95ms > 0 {
					r.P95Ratio = ev.P95ms / pgRow.P95ms
				}
				out = append(out, r)
			}
		}
	}
	return out
}

func writeBenchTable(out io.Writer, rep *benchReport) error {
	bw := bufio.NewWriter(out)
	mode := "durable (fsync before every acknowledgement)"
	if rep.Config.NoSync {
		mode = "NOSYNC (no fsync: acknowledged commits can be lost on power failure)"
	}
	fmt.Fprintf(bw, "evstore bench: %s, %d clients, %s per timed workload, %d CPUs, %s\n",
		mode, rep.Config.Clients, rep.Config.Duration, rep.Machine.CPUs, rep.Machine.GoVersion)
	fmt.Fprintf(bw, "disk: 4 KiB write + fsync p50 %s ms, p99 %s ms (a durable commit makes two)\n\n",
		benchMs(rep.Machine.FsyncP50ms), benchMs(rep.Machine.FsyncP99ms))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tstore\tops/s\tevents/s\tp50 ms\tp95 ms\tp99 ms\tretries\terrors\tpeak RSS MiB\t")
	for _, r := range rep.Results {
		if r.Skipped {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.Workload, r.Store)
			continue
		}
		ops, p50, p95, p99 := benchNum(r.OpsPerSec), benchMs(r.P50ms), benchMs(r.P95ms), benchMs(r.P99ms)
		if r.Ops+r.Errors <= 1 {
			// One pass over everything (a scan, a replication): its rate
			// is events/s and its only latency is the run time.
			ops, p50, p95, p99 = "-", "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.0f\t\n", r.Workload, r.Store,
			ops, benchNum(r.EventsPerSec), p50, p95, p99, r.Retries, r.Errors, r.PeakRSSMiB)
	}
	tw.Flush()
	var notes bytes.Buffer
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(&notes, "  %s (%s): %s\n", r.Workload, r.Store, r.Note)
		}
	}
	if notes.Len() > 0 {
		fmt.Fprintf(bw, "\nnotes:\n%s", notes.String())
	}
	if len(rep.Ratios) > 0 {
		fmt.Fprintln(bw, "\nevstore / PostgreSQL baseline:")
		for _, r := range rep.Ratios {
			fmt.Fprintf(bw, "  %s: %.2f× the ops/s (%s vs %s), p95 %.2f× the baseline's\n", r.Workload, r.OpsRatio, benchNum(r.Evstore), benchNum(r.Postgres), r.P95Ratio)
		}
	}
	return bw.Flush()
}

// num prints a rate with thousands separators, which keeps the table
// readable across six orders of magnitude.
func benchNum(v float64) string {
	if v == 0 {
		return "-"
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func benchMs(v float64) string {
	if v == 0 {
		return "-"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// probeFsync times n overwrites of one 4 KiB block, each followed by an
// fsync: what the disk under dir charges for durability.
func probeFsync(dir string, n int) (p50, p99 float64, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	if _, err := f.Write(block); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	lat := make([]time.Duration, 0, n)
	for i := range n {
		block[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return benchQuantileMs(lat, 0.5), benchQuantileMs(lat, 0.99), nil
}

// benchResetPeakRSS makes the kernel's peak-RSS counter start again from the
// current RSS (Linux 4.0+), so the next reading is one workload's peak, not
// the process's. Elsewhere it does nothing and the reading is cumulative.
func benchResetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// benchPeakRSSMiB reads VmHWM, falling back to getrusage's ru_maxrss (which
// cannot be reset).
func benchPeakRSSMiB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(rest)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}
