package bench

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
	"text/tabwriter"
	"time"

	"github.com/evstore/evstore/local"
)

// Config is what `evstore bench` was asked to do.
type Config struct {
	Workloads []string      `json:"workloads"`
	Dir       string        `json:"dir,omitempty"` // parent of the temporary stores; "" is the system temp dir
	Duration  time.Duration `json:"duration_ns"`   // of the timed workloads (deposit, transfer)
	Clients   int           `json:"clients"`
	JSON      bool          `json:"-"`
	Baseline  string        `json:"-"` // PostgreSQL URL; kept out of the output, it may hold a password
	To        string        `json:"-"` // replication target URL; defaults to Baseline
	// FleetVia is a PgBouncer (transaction mode) URL in front of To's
	// server: the fleet workload runs through it too.
	FleetVia string `json:"-"`
	// FleetDevices is the fleet workload's device count; default 1,000.
	FleetDevices int     `json:"fleet_devices,omitempty"`
	NoSync       bool    `json:"nosync"`
	Scale        float64 `json:"scale"` // multiplies every workload's size, for smoke tests
	CPUProfile   string  `json:"-"`
	// BaselineConns is the PostgreSQL connection count; 0 means one per
	// client, which is what a pool sized for the clients would open.
	BaselineConns int `json:"baseline_conns,omitempty"`
}

// Workloads lists the workloads in the order a full run executes them.
var Workloads = []string{
	"seed-single", "seed-multi", "seed-batch", "deposit", "deposit-socket", "transfer",
	"contention", "checkout", "checkout-hot", "growth", "read", "projection", "replicate-rows", "replicate-frames",
	"fleet",
}

// Result is one row of the table.
type Result struct {
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

// Ratio compares evstore with the PostgreSQL baseline on one workload.
type Ratio struct {
	Workload string  `json:"workload"`
	OpsRatio float64 `json:"ops_ratio"` // evstore ops/s ÷ baseline ops/s
	P95Ratio float64 `json:"p95_ratio"` // evstore p95 ÷ baseline p95
	Evstore  float64 `json:"evstore"`   // ops/s
	Postgres float64 `json:"postgres"`  // ops/s
	Durable  bool    `json:"durable"`   // false under --nosync
}

type Report struct {
	Config  Config   `json:"config"`
	Machine Machine  `json:"machine"`
	Results []Result `json:"results"`
	Ratios  []Ratio  `json:"ratiosOf,omitempty"`
}

type Machine struct {
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

// sample collects one client's measurements; clients never share one, so
// recording needs no lock.
type sample struct {
	lat     []time.Duration
	retries int64
	errors  int64
	events  int64
	err     error // the first error, for the note

	// For timed clients (see runClients).
	deadline time.Time
	ctx      context.Context
}

func (s *sample) record(d time.Duration, events, retries int, err error) {
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

// summarize turns the clients' samples into a row measured over elapsed.
func summarize(workload, store string, elapsed time.Duration, samples ...*sample) Result {
	r := Result{Workload: workload, Store: store, Seconds: elapsed.Seconds()}
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
	r.P50ms, r.P95ms, r.P99ms = quantileMs(all, 0.50), quantileMs(all, 0.95), quantileMs(all, 0.99)
	if firstErr != nil {
		r.Note = "first error: " + firstErr.Error()
	}
	return r
}

// quantileMs reads a quantile of sorted latencies by the nearest-rank method.
func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// workloadEnv is what every workload gets: where to put its store and how to
// open it.
type workloadEnv struct {
	cfg   Config
	dir   string
	log   io.Writer // progress, to stderr so --json output stays clean
	count int
}

// scaled applies --scale to a workload size, never below min.
func (e *workloadEnv) scaled(n, min int) int {
	return max(int(math.Round(float64(n)*e.cfg.Scale)), min)
}

// openStore creates a fresh store for one workload; cleanup closes and
// deletes it.
func (e *workloadEnv) openStore(name string) (*local.Store, func(), error) {
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

func (e *workloadEnv) logf(format string, v ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", v...)
}

// Run runs cfg's workloads and writes the table (or JSON) to out.
// Progress goes to progress, which may be io.Discard.
func Run(ctx context.Context, cfg Config, out, progress io.Writer) (*Report, error) {
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
		cfg.Workloads = Workloads
	}
	for _, w := range cfg.Workloads {
		if !slices.Contains(Workloads, w) {
			return nil, fmt.Errorf("unknown workload %q (known: %s)", w, strings.Join(Workloads, ", "))
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
	env := &workloadEnv{cfg: cfg, dir: dir, log: progress}
	rep := &Report{
		Config:  cfg,
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Durable: !cfg.NoSync},
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
		rows, err := runWorkload(ctx, env, pg, w)
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", w, err)
		}
		rep.Results = append(rep.Results, rows...)
	}
	compareSocket(rep.Results)
	rep.Ratios = ratiosOf(rep.Results, !cfg.NoSync)
	if cfg.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return rep, enc.Encode(rep)
	}
	return rep, writeTable(out, rep)
}

// runWorkload runs one workload with the heap trimmed and the peak RSS reset
// first, so each row's RSS is its own.
func runWorkload(ctx context.Context, env *workloadEnv, pg *pgBaseline, w string) ([]Result, error) {
	var rows []Result
	run := func(store string, fn func() ([]Result, error)) error {
		debug.FreeOSMemory()
		resetPeakRSS()
		got, err := fn()
		rss := peakRSSMiB()
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
		err = run("evstore", func() ([]Result, error) { return seedSingle(ctx, env) })
	case "seed-multi":
		err = run("evstore", func() ([]Result, error) { return seedMulti(ctx, env) })
	case "seed-batch":
		err = run("evstore", func() ([]Result, error) { return seedBatch(ctx, env) })
	case "deposit", "transfer":
		err = run("evstore", func() ([]Result, error) { return bankWorkload(ctx, env, w) })
		if err == nil && pg != nil {
			err = run("postgres", func() ([]Result, error) { return pg.bench(ctx, env, w) })
		}
	case "deposit-socket":
		err = run("evstore", func() ([]Result, error) { return depositSocket(ctx, env) })
	case "contention":
		err = run("evstore", func() ([]Result, error) { return contention(ctx, env) })
	case "checkout", "checkout-hot":
		err = run("evstore", func() ([]Result, error) { return checkoutWorkload(ctx, env, w, w == "checkout-hot") })
	case "growth":
		err = run("evstore", func() ([]Result, error) { return growth(ctx, env) })
	case "read":
		err = run("evstore", func() ([]Result, error) { return readWorkload(ctx, env) })
	case "projection":
		err = run("evstore", func() ([]Result, error) { return projectionWorkload(ctx, env) })
	case "replicate-rows", "replicate-frames":
		err = run("evstore", func() ([]Result, error) { return replicateWorkload(ctx, env, w) })
	case "fleet":
		err = run("evstore", func() ([]Result, error) { return fleetWorkload(ctx, env) })
	}
	return rows, err
}

func ratiosOf(results []Result, durable bool) []Ratio {
	var out []Ratio
	for _, pgRow := range results {
		if pgRow.Store != "postgres" || pgRow.OpsPerSec == 0 {
			continue
		}
		for _, ev := range results {
			if ev.Store == "evstore" && ev.Workload == pgRow.Workload {
				r := Ratio{Workload: ev.Workload, OpsRatio: ev.OpsPerSec / pgRow.OpsPerSec, Evstore: ev.OpsPerSec, Postgres: pgRow.OpsPerSec, Durable: durable}
				if pgRow.P95ms > 0 {
					r.P95Ratio = ev.P95ms / pgRow.P95ms
				}
				out = append(out, r)
			}
		}
	}
	return out
}

func writeTable(out io.Writer, rep *Report) error {
	bw := bufio.NewWriter(out)
	mode := "durable (fsync before every acknowledgement)"
	if rep.Config.NoSync {
		mode = "NOSYNC (no fsync: acknowledged commits can be lost on power failure)"
	}
	fmt.Fprintf(bw, "evstore bench: %s, %d clients, %s per timed workload, %d CPUs, %s\n",
		mode, rep.Config.Clients, rep.Config.Duration, rep.Machine.CPUs, rep.Machine.GoVersion)
	fmt.Fprintf(bw, "disk: 4 KiB write + fsync p50 %s ms, p99 %s ms (a durable commit makes two)\n\n",
		msText(rep.Machine.FsyncP50ms), msText(rep.Machine.FsyncP99ms))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tstore\tops/s\tevents/s\tp50 ms\tp95 ms\tp99 ms\tretries\terrors\tpeak RSS MiB\t")
	for _, r := range rep.Results {
		if r.Skipped {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.Workload, r.Store)
			continue
		}
		ops, p50, p95, p99 := num(r.OpsPerSec), msText(r.P50ms), msText(r.P95ms), msText(r.P99ms)
		if r.Ops+r.Errors <= 1 {
			// One pass over everything (a scan, a replication): its rate
			// is events/s and its only latency is the run time.
			ops, p50, p95, p99 = "-", "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.0f\t\n", r.Workload, r.Store,
			ops, num(r.EventsPerSec), p50, p95, p99, r.Retries, r.Errors, r.PeakRSSMiB)
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
			fmt.Fprintf(bw, "  %s: %.2f× the ops/s (%s vs %s), p95 %.2f× the baseline's\n", r.Workload, r.OpsRatio, num(r.Evstore), num(r.Postgres), r.P95Ratio)
		}
	}
	return bw.Flush()
}

// num prints a rate with thousands separators, which keeps the table
// readable across six orders of magnitude.
func num(v float64) string {
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

func msText(v float64) string {
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
	return quantileMs(lat, 0.5), quantileMs(lat, 0.99), nil
}

// Smoke shrinks a run to a few seconds: every code path, no meaningful
// numbers. Sizes and durations the caller set explicitly are kept.
func (cfg *Config) Smoke(scaleSet, durationSet bool) {
	if !scaleSet {
		cfg.Scale = 0.01
	}
	if !durationSet {
		cfg.Duration = 300 * time.Millisecond
	}
}

// Check reports the first thing wrong with cfg, in the words of the
// Config's fields.
func (cfg Config) Check() error {
	for _, w := range cfg.Workloads {
		if !slices.Contains(Workloads, w) {
			if strings.HasPrefix(w, "-") {
				return fmt.Errorf("flag %s after the workloads: flags go first, as in 'evstore bench --json deposit'", w)
			}
			return fmt.Errorf("unknown workload %q (known: %s)", w, strings.Join(Workloads, ", "))
		}
	}
	switch {
	case cfg.Clients <= 0:
		return fmt.Errorf("clients must be at least 1, got %d", cfg.Clients)
	case cfg.Duration <= 0:
		return fmt.Errorf("duration must be positive, got %s", cfg.Duration)
	case cfg.Scale <= 0:
		return fmt.Errorf("scale must be positive, got %g", cfg.Scale)
	}
	return nil
}
