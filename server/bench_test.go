package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/local"
)

// benchStore is a NoSync store with 1,000 open accounts, so that the
// benchmarks below measure the request path rather than the disk.
func benchStore(b *testing.B) (*local.Store, *executor.Executor, *commands.Registry) {
	b.Helper()
	store, err := local.Open(filepath.Join(b.TempDir(), "b.db"), local.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	ex, reg := executor.New(store, executor.Options{}), commands.Builtin()
	for i := range 1000 {
		if _, err := reg.Run(context.Background(), ex, "bank.open", fmt.Appendf(nil, `{"account":"a%d","owner":"o"}`, i)); err != nil {
			b.Fatal(err)
		}
	}
	return store, ex, reg
}

// BenchmarkDepositInProcess and BenchmarkDepositSocket compare a deposit
// run in-process with the same deposit sent through the socket by the Go
// client (`go test -bench Deposit -benchmem ./server`).
func BenchmarkDepositInProcess(b *testing.B) {
	_, ex, reg := benchStore(b)
	var n atomic.Int64
	b.SetParallelism(32) // 64 clients on 2 CPUs, as evstore bench runs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			args := fmt.Appendf(nil, `{"account":"a%d","amount":1}`, n.Add(1)%1000)
			if _, err := reg.Run(context.Background(), ex, "bank.deposit", args); err != nil {
				b.Error(err)
			}
		}
	})
}

func BenchmarkDepositSocket(b *testing.B) {
	store, ex, reg := benchStore(b)
	dir := filepath.Join(shortDirB(b), "b.sock")
	srv, err := Listen(store, Options{Registry: reg, Executor: ex, Socket: dir})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	c, err := DialSocket(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var n atomic.Int64
	b.SetParallelism(32) // 64 clients on 2 CPUs, as evstore bench runs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			args := json.RawMessage(fmt.Appendf(nil, `{"account":"a%d","amount":1}`, n.Add(1)%1000))
			if _, err := c.Exec(ctx, "bank.deposit", args, ""); err != nil {
				b.Error(err)
			}
		}
	})
}
