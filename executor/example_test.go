package executor_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

// Increment adds one to a counter stream; the state is the count so far.
type Increment struct{ Counter string }

func (c Increment) Streams() []string            { return []string{c.Counter} }
func (c Increment) Apply(n *int, _ format.Event) { *n++ }
func (c Increment) Handle(_ context.Context, n int) ([]format.EventData, error) {
	return []format.EventData{{Stream: c.Counter, Type: "Incremented", Data: fmt.Appendf(nil, `{"n":%d}`, n+1)}}, nil
}

// The README's embedding example: open, define a command, execute, read.
func Example() {
	dir, _ := os.MkdirTemp("", "evstore-example")
	defer os.RemoveAll(dir)

	store, err := local.Open(filepath.Join(dir, "app.db"), local.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ex := executor.New(store, executor.Options{})
	for range 3 {
		if _, err := executor.Execute(context.Background(), ex, Increment{Counter: "counter-visits"}); err != nil {
			log.Fatal(err)
		}
	}
	for ev, err := range store.ReadStream("counter-visits", 1) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.Position, ev.Version, ev.Type, string(ev.Data))
	}
	// Output:
	// 1 1 Incremented {"n":1}
	// 2 2 Incremented {"n":2}
	// 3 3 Incremented {"n":3}
}
