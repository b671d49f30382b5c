package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// The shop workloads model a till, written as an application would write
// it: Checkout reads a fresh basket stream, discovers the stock stream of
// each SKU in it with ReadAlso, checks the stock and appends to all of
// them in one commit. It is a StreamSnapshotter, so every stock stream's
// state is kept on its own and a checkout folds only what is new.

// shopSKUs is the catalogue size.
const shopSKUs = 200

func skuStream(sku int) string { return "stock-" + strconv.Itoa(sku) }

type line struct {
	sku string // stream
	qty int64
}

// checkoutCmd checks a basket out: it must not be checked out already and
// every line must be in stock.
type checkoutCmd struct {
	basket string
	lines  []line
}

type shopState struct {
	checkedOut bool
	stock      map[string]int64 // by stock stream
}

var errOutOfStock = errors.New("out of stock")

func (c checkoutCmd) Streams() []string { return []string{c.basket} }

func (c checkoutCmd) Apply(s *shopState, ev format.Event) {
	if err := c.TryApply(s, ev); err != nil {
		panic(err) // the executor calls TryApply
	}
}

// TryApply decodes {"qty":N}; an event it cannot read fails the command.
func (c checkoutCmd) TryApply(s *shopState, ev format.Event) error {
	if ev.Type == "CheckedOut" {
		s.checkedOut = true
		return nil
	}
	qty, err := qtyOf(ev.Data)
	if err != nil {
		return err
	}
	if s.stock == nil {
		s.stock = make(map[string]int64)
	}
	switch ev.Type {
	case "Restocked":
		s.stock[ev.Stream] += qty
	case "Sold":
		s.stock[ev.Stream] -= qty
	}
	return nil
}

func qtyOf(data []byte) (int64, error) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"qty":`))
	if !ok || len(rest) < 2 {
		return 0, fmt.Errorf("not a quantity: %q", data)
	}
	return strconv.ParseInt(string(rest[:len(rest)-1]), 10, 64)
}

func (c checkoutCmd) Handle(ctx context.Context, s shopState) ([]format.EventData, error) {
	if s.checkedOut {
		return nil, errors.New("basket already checked out")
	}
	var missing []string
	for _, l := range c.lines {
		if _, ok := executor.Read(ctx, l.sku); !ok {
			missing = append(missing, l.sku)
		}
	}
	if len(missing) > 0 {
		return nil, executor.ReadAlso(missing...)
	}
	out := make([]format.EventData, 0, len(c.lines)+1)
	out = append(out, format.EventData{Stream: c.basket, Type: "CheckedOut", Data: []byte(`{}`)})
	for _, l := range c.lines {
		if s.stock[l.sku] < l.qty {
			return nil, fmt.Errorf("%s: %w", l.sku, errOutOfStock)
		}
		out = append(out, format.EventData{Stream: l.sku, Type: "Sold", Data: qtyData(l.qty)})
	}
	return out, nil
}

func qtyData(q int64) []byte { return append(strconv.AppendInt([]byte(`{"qty":`), q, 10), '}') }

func (checkoutCmd) SnapshotKey() string { return "bench.shop" }

func (checkoutCmd) CloneState(s shopState) shopState {
	s.stock = maps.Clone(s.stock)
	return s
}

func (checkoutCmd) MergeState(dst *shopState, part shopState, stream string) {
	if strings.HasPrefix(stream, "basket-") {
		dst.checkedOut = part.checkedOut
		return
	}
	if dst.stock == nil {
		dst.stock = make(map[string]int64)
	}
	dst.stock[stream] = part.stock[stream]
}

var _ executor.StreamSnapshotter[shopState] = checkoutCmd{}

// restockCmd adds stock to one SKU: a one-stream Snapshotter.
type restockCmd struct {
	sku string
	qty int64
}

type stockLevel struct{ qty int64 }

func (c restockCmd) Streams() []string { return []string{c.sku} }

func (c restockCmd) Apply(s *stockLevel, ev format.Event) {
	q, err := qtyOf(ev.Data)
	if err != nil {
		return
	}
	if ev.Type == "Sold" {
		q = -q
	}
	s.qty += q
}

func (c restockCmd) Handle(context.Context, stockLevel) ([]format.EventData, error) {
	return []format.EventData{{Stream: c.sku, Type: "Restocked", Data: qtyData(c.qty)}}, nil
}

func (restockCmd) SnapshotKey() string                { return "bench.restock" }
func (restockCmd) CloneState(s stockLevel) stockLevel { return s }

// stockUp gives every SKU far more stock than a run can sell.
func stockUp(ctx context.Context, store *local.Store) error {
	events := make([]format.EventData, shopSKUs)
	for i := range events {
		events[i] = format.EventData{Stream: skuStream(i), Type: "Restocked", Data: qtyData(1 << 40)}
	}
	_, err := store.Append(ctx, events)
	return err
}

// checkoutWorkload runs Checkout from 16 clients for the configured
// duration; hot draws SKUs from Zipf(1.1) instead of uniformly.
func checkoutWorkload(ctx context.Context, env *workloadEnv, name string, hot bool) ([]Result, error) {
	store, done, err := env.openStore(name)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := stockUp(ctx, store); err != nil {
		return nil, err
	}
	ex := executor.New(store, executor.Options{}) // the targets are for default options
	const clients = 16
	var next [clients]int
	var hottest [shopSKUs]int64
	counts := make([]*[shopSKUs]int64, clients)
	var ids atomic.Int32
	r := runClients(ctx, clients, env.cfg.Duration, func(s *sample) {
		me := int(ids.Add(1) - 1)
		counts[me] = new([shopSKUs]int64)
		rng := rand.New(rand.NewPCG(uint64(me), uint64(time.Now().UnixNano())))
		zipf := rand.NewZipf(rng, 1.1, 1, shopSKUs-1)
		for {
			next[me]++
			n := 1 + rng.IntN(3)
			cmd := checkoutCmd{basket: fmt.Sprintf("basket-%d-%d", me, next[me])}
			for len(cmd.lines) < n {
				sku := rng.IntN(shopSKUs)
				if hot {
					sku = int(zipf.Uint64())
				}
				st := skuStream(sku)
				if !slices.ContainsFunc(cmd.lines, func(l line) bool { return l.sku == st }) {
					cmd.lines = append(cmd.lines, line{sku: st, qty: 1 + rng.Int64N(3)})
					counts[me][sku]++
				}
			}
			t := time.Now()
			res, err := executor.Execute(ctx, ex, executor.Command[shopState](cmd))
			if !s.timed(t, len(res.Events), res.Retries, err) {
				return
			}
		}
	})
	r.Workload = name
	var lines int64
	for _, c := range counts {
		if c == nil {
			continue
		}
		for i, n := range c {
			hottest[i] += n
			lines += n
		}
	}
	share := 0.0
	if lines > 0 {
		share = float64(slices.Max(hottest[:])) / float64(lines)
	}
	r.Extra = map[string]float64{"clients": clients, "hottest_sku_share": share}
	note := fmt.Sprintf("%d clients, baskets of 1-3 of %d SKUs (stock streams found with ReadAlso), hottest SKU in %.0f%% of lines", clients, shopSKUs, share*100)
	if r.Note != "" {
		note += "; " + r.Note
	}
	r.Note = note
	return []Result{r}, nil
}

// growth measures whether a command's cost grows with its stream: a
// one-stream Snapshotter (restock) and a Checkout of a fresh basket plus
// the long stream, on streams of 1k, 10k and 50k events, with an event
// cache far too small to hold them. The three sizes take turns, command by
// command, so a busy machine slows them alike.
func growth(ctx context.Context, env *workloadEnv) ([]Result, error) {
	store, done, err := env.openStore("growth")
	if err != nil {
		return nil, err
	}
	defer done()
	ex := executor.New(store, executor.Options{CacheEvents: 100, CacheBytes: 64 << 10})
	sizes := []int{env.scaled(1000, 10), env.scaled(10_000, 100), env.scaled(50_000, 500)}
	streams := make([]string, len(sizes))
	for i, size := range sizes {
		streams[i] = "stock-long-" + strconv.Itoa(size)
		// Bulk-appended, as an import would, without the executor.
		for have := 0; have < size; {
			batch := make([]format.EventData, min(2000, size-have))
			for j := range batch {
				batch[j] = format.EventData{Stream: streams[i], Type: "Restocked", Data: qtyData(1 << 20)}
			}
			if _, err := store.Append(ctx, batch); err != nil {
				return nil, err
			}
			have += len(batch)
		}
	}
	ops := env.scaled(500, 20)
	restock := make([]*sample, len(sizes))
	co := make([]*sample, len(sizes))
	first := make([][2]time.Duration, len(sizes)) // the first command of each kind folds the whole stream
	for i := range sizes {
		restock[i], co[i] = &sample{}, &sample{}
	}
	start := time.Now()
	for op := range ops {
		for i, st := range streams {
			t := time.Now()
			res, err := executor.Execute(ctx, ex, executor.Command[stockLevel](restockCmd{sku: st, qty: 1}))
			d := time.Since(t)
			t = time.Now()
			cmd := checkoutCmd{basket: fmt.Sprintf("basket-growth-%d-%d", i, op), lines: []line{{sku: st, qty: 1}}}
			res2, err2 := executor.Execute(ctx, ex, executor.Command[shopState](cmd))
			d2 := time.Since(t)
			if op == 0 {
				first[i] = [2]time.Duration{d, d2}
				if err == nil && err2 == nil {
					continue
				}
			}
			restock[i].record(d, len(res.Events), res.Retries, err)
			co[i].record(d2, len(res2.Events), res2.Retries, err2)
		}
	}
	elapsed := time.Since(start)
	var out []Result
	for k, kind := range []struct {
		name string
		s    []*sample
	}{{"restock", restock}, {"checkout", co}} {
		var base float64
		for i, size := range sizes {
			label := strconv.Itoa(size)
			if size >= 1000 {
				label = strconv.Itoa(size/1000) + "k"
			}
			r := summarize("growth-"+kind.name+"-"+label, "", elapsed, kind.s[i])
			if i == 0 {
				base = r.P50ms
			}
			r.Extra = map[string]float64{"stream_events": float64(size), "p50_ratio_to_smallest": r.P50ms / base, "first_ms": float64(first[i][k]) / 1e6}
			r.Note = fmt.Sprintf("p50 %.2f× the %d-event stream's; first command (folds the whole stream) %.1f ms", r.P50ms/base, sizes[0], float64(first[i][k])/1e6)
			out = append(out, r)
		}
	}
	return out, nil
}
