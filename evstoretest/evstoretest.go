package evstoretest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Epoch is the time a scenario's clock starts at, 2026-01-01 09:00 UTC:
// every event is stamped with it until [Scenario.At] moves the clock.
func Epoch() time.Time { return time.Date(2026, time.January, 1, 9, 0, 0, 0, time.UTC) }

// Event is a shorthand for an event with JSON (or any) data.
func Event(stream, typ, data string) format.EventData {
	return format.EventData{Stream: stream, Type: typ, Data: []byte(data)}
}

// Scenario is a temporary store with a fixed clock and an executor on it.
type Scenario struct {
	t     testing.TB
	Store *local.Store
	Exec  *executor.Executor

	mu  sync.Mutex
	now time.Time
}

// New opens an empty scenario; the store is closed and removed when the
// test ends.
func New(t testing.TB) *Scenario {
	t.Helper()
	sc := &Scenario{t: t, now: Epoch()}
	s, err := local.Open(filepath.Join(t.TempDir(), "evstoretest.db"), local.Options{NoSync: true, Clock: sc.clock})
	if err != nil {
		t.Fatalf("evstoretest: open a temporary store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	sc.Store, sc.Exec = s, executor.New(s, executor.Options{})
	return sc
}

func (sc *Scenario) clock() time.Time {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.now
}

// Given opens a scenario holding events, appended in order.
func Given(t testing.TB, events ...format.EventData) *Scenario {
	t.Helper()
	return New(t).Given(events...)
}

// Given appends events, in order and atomically.
func (sc *Scenario) Given(events ...format.EventData) *Scenario {
	sc.t.Helper()
	if len(events) == 0 {
		return sc
	}
	if _, err := sc.Store.Append(context.Background(), events); err != nil {
		sc.t.Fatalf("evstoretest: given events: %v", err)
	}
	return sc
}

// At sets the clock that stamps the events appended from now on.
func (sc *Scenario) At(t time.Time) *Scenario {
	sc.mu.Lock()
	sc.now = t.UTC()
	sc.mu.Unlock()
	return sc
}

// Outcome is what a command did in a scenario.
type Outcome struct {
	sc     *Scenario
	what   string
	head   uint64 // before the command
	Result executor.Result
	Err    error
}

// When runs cmd in the scenario.
func When[S any](sc *Scenario, cmd executor.Command[S], opts ...executor.ExecOption) *Outcome {
	sc.t.Helper()
	o := &Outcome{sc: sc, what: fmt.Sprintf("%T", cmd), head: sc.Store.Head()}
	o.Result, o.Err = executor.Execute(context.Background(), sc.Exec, cmd, opts...)
	return o
}

// Registry runs commands by name, as *commands.Registry does.
type Registry interface {
	Run(ctx context.Context, ex *executor.Executor, name string, args json.RawMessage, opts ...executor.ExecOption) (executor.Result, error)
}

// WhenRun runs the command registered under name with JSON args.
func (sc *Scenario) WhenRun(reg Registry, name, args string, opts ...executor.ExecOption) *Outcome {
	sc.t.Helper()
	o := &Outcome{sc: sc, what: name + " " + args, head: sc.Store.Head()}
	o.Result, o.Err = reg.Run(context.Background(), sc.Exec, name, json.RawMessage(args), opts...)
	return o
}

// Then checks that the command succeeded and appended exactly want, in
// order: same streams and types, data equal as JSON when both sides are
// JSON (byte for byte otherwise), and metadata equal where want sets it.
func (o *Outcome) Then(want ...format.EventData) *Outcome {
	o.sc.t.Helper()
	if o.Err != nil {
		o.sc.t.Fatalf("when %s: failed with %v\nwant events:\n%s", o.what, o.Err, listData(want))
	}
	got := o.Result.Events
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = got[i].Stream == want[i].Stream && got[i].Type == want[i].Type && sameData(got[i].Data, want[i].Data) &&
			(want[i].Metadata == nil || maps.Equal(got[i].Metadata, want[i].Metadata))
	}
	if !same {
		o.sc.t.Fatalf("when %s:\ngot events:\n%s\nwant events:\n%s", o.what, listEvents(got), listData(want))
	}
	return o
}

// ThenError checks that the command failed with an error matching target
// (errors.Is) and wrote nothing.
func (o *Outcome) ThenError(target error) *Outcome {
	o.sc.t.Helper()
	if o.Err == nil {
		o.sc.t.Fatalf("when %s: succeeded, want an error matching %v\ngot events:\n%s", o.what, target, listEvents(o.Result.Events))
	}
	if !errors.Is(o.Err, target) {
		o.sc.t.Fatalf("when %s: failed with %v, want an error matching %v", o.what, o.Err, target)
	}
	if h := o.sc.Store.Head(); h != o.head {
		o.sc.t.Fatalf("when %s: failed but the log moved from %d to %d", o.what, o.head, h)
	}
	return o
}

// ThenErrorContains is ThenError for an error known by its message: the
// error must contain substr.
func (o *Outcome) ThenErrorContains(substr string) *Outcome {
	o.sc.t.Helper()
	if o.Err == nil || !strings.Contains(o.Err.Error(), substr) {
		o.sc.t.Fatalf("when %s: error %v, want one containing %q", o.what, o.Err, substr)
	}
	if h := o.sc.Store.Head(); h != o.head {
		o.sc.t.Fatalf("when %s: failed but the log moved from %d to %d", o.what, o.head, h)
	}
	return o
}

// Fold folds cmd's state from events as the executor would: only events
// on cmd's streams, in the given order, with positions and versions
// assigned as a fresh store would and times at [Epoch]. A command that is
// an [executor.TryApplier] folds through TryApply, as in the executor, and
// Fold panics with the event if it refuses one. Use it to test
// Handle alone:
//
//	state := evstoretest.Fold(cmd, opened, deposited)
//	events, err := cmd.Handle(ctx, state)
func Fold[S any](cmd executor.Command[S], events ...format.EventData) S {
	var state S
	epoch := Epoch()
	streams := cmd.Streams()
	versions := map[string]uint64{}
	try, _ := cmd.(executor.TryApplier[S])
	for i, d := range events {
		versions[d.Stream]++
		if !slices.Contains(streams, d.Stream) {
			continue
		}
		ev := format.Event{
			Position: uint64(i + 1), Stream: d.Stream, Version: versions[d.Stream], Type: d.Type,
			Data: d.Data, Metadata: d.Metadata, ID: fmt.Sprintf("evstoretest-%d", i+1), Time: epoch,
		}
		if try == nil {
			cmd.Apply(&state, ev)
			continue
		}
		// As the executor does, a TryApplier's fold may refuse an event;
		// a test giving one such events has a bug, so say which.
		if err := try.TryApply(&state, ev); err != nil {
			panic(fmt.Sprintf("evstoretest.Fold: the fold refused event %d (%s v%d %s): %v", ev.Position, ev.Stream, ev.Version, ev.Type, err))
		}
	}
	return state
}

func sameData(got, want []byte) bool {
	if bytes.Equal(got, want) {
		return true
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	return reflect.DeepEqual(g, w)
}

func listEvents(evs []format.Event) string {
	if len(evs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s %s\n", e.Stream, e.Type, e.Data)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func listData(evs []format.EventData) string {
	if len(evs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s %s\n", e.Stream, e.Type, e.Data)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
