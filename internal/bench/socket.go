package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/evstore/evstore/server"
)

// depositSocket is deposit with the clients in front of the socket: each
// command goes as an HTTP request over the Unix socket to a server holding
// the store, as evstore exec and other processes reach an owner. The
// difference from deposit is the cost of the API (HTTP, JSON both ways,
// the socket); the clients run in this process, so their CPU counts too.
func depositSocket(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, reg, ex, accounts, done, err := openBank(ctx, env, "deposit-socket")
	if err != nil {
		return nil, err
	}
	defer done()
	sock := server.SocketPath(store.Path())
	if len(sock) > 100 { // beyond what the OS takes for a socket path
		dir, err := os.MkdirTemp("", "evs")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		sock = filepath.Join(dir, "bench.sock")
	}
	srv, err := server.Listen(store, server.Options{Registry: reg, Executor: ex, Socket: sock})
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() {
		stop()
		<-served
	}()
	client, err := server.DialSocket(ctx, sock)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	r := runClients(ctx, env.cfg.Clients, env.cfg.Duration, func(s *sample) {
		var args []byte
		for {
			args = bankOp(args[:0], "deposit", accounts)
			t := time.Now()
			res, err := client.Exec(ctx, "bank.deposit", args, "")
			if !s.timed(t, len(res.Events), res.Retries, err) {
				return
			}
		}
	})
	r.Workload = "deposit-socket"
	return []Result{r}, nil
}

// compareSocket notes deposit-socket's throughput and p95 beside
// in-process deposit from the same run, the figure the target is set on.
func compareSocket(results []Result) {
	var dep *Result
	for i := range results {
		if results[i].Workload == "deposit" && results[i].Store == "evstore" {
			dep = &results[i]
		}
	}
	for i := range results {
		r := &results[i]
		if r.Workload != "deposit-socket" || dep == nil || dep.OpsPerSec == 0 {
			continue
		}
		ratio := r.OpsPerSec / dep.OpsPerSec
		if r.Extra == nil {
			r.Extra = map[string]float64{}
		}
		r.Extra["ops_vs_deposit"] = ratio
		note := fmt.Sprintf("%.0f%% of in-process deposit's ops/s (target 50%%); p95 %.2f ms vs %.2f ms", ratio*100, r.P95ms, dep.P95ms)
		if a, b := r.Extra["cpu_ms_per_op"], dep.Extra["cpu_ms_per_op"]; a > 0 && b > 0 {
			note += fmt.Sprintf("; CPU %.3f ms per op vs %.3f ms (clients included)", a, b)
		}
		if r.Note != "" {
			note += "; " + r.Note
		}
		r.Note = note
	}
}
