package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/evstore/evstore/executor"
)

// ErrUnknownCommand is returned by [Registry.Run] and [Registry.Check] for a
// name that is not registered.
var ErrUnknownCommand = errors.New("unknown command")

// Spec describes one named command.
type Spec struct {
	Name    string // e.g. "bank.transfer"
	Args    string // the shape of the JSON arguments, for humans
	Summary string // one sentence

	// Run decodes args and executes the command. Errors wrapping [ErrBadArgs]
	// mean the arguments were wrong; any other error comes from the domain,
	// the executor or the store. Nothing is written when Run fails.
	Run func(ctx context.Context, ex *executor.Executor, args json.RawMessage, opts ...executor.ExecOption) (executor.Result, error)

	// Check decodes args without touching a store, so that a caller can reject
	// bad input before it opens (and so creates) a database. Optional.
	Check func(args json.RawMessage) error
}

// Registry maps command names to their specs. The zero value is not usable;
// use [NewRegistry] or [Builtin]. A Registry is not safe for concurrent
// Register calls; lookups may run concurrently once registration is done.
type Registry struct {
	specs map[string]Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{specs: make(map[string]Spec)}
}

// Builtin returns a new registry holding the built-in commands. Each call
// returns an independent registry.
func Builtin() *Registry {
	r := NewRegistry()
	for _, s := range []Spec{appendSpec(), openSpec(), depositSpec(), withdrawSpec(), transferSpec(), counterSpec()} {
		if err := r.Register(s); err != nil {
			panic(err) // the built-in names are distinct; this is a programming error
		}
	}
	return r
}

// Register adds s. It refuses an empty name, a nil Run or a name already
// registered, because silently replacing a command would change what a
// stored script does.
func (r *Registry) Register(s Spec) error {
	switch {
	case s.Name == "":
		return errors.New("commands: register: empty command name")
	case s.Run == nil:
		return fmt.Errorf("commands: register %q: nil Run", s.Name)
	}
	if _, dup := r.specs[s.Name]; dup {
		return fmt.Errorf("commands: register %q: already registered", s.Name)
	}
	r.specs[s.Name] = s
	return nil
}

// Lookup returns the spec registered under name.
func (r *Registry) Lookup(name string) (Spec, bool) {
	s, ok := r.specs[name]
	return s, ok
}

// All returns every spec, sorted by name.
func (r *Registry) All() []Spec {
	all := make([]Spec, 0, len(r.specs))
	for _, s := range r.specs {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return all
}

// Check validates args for the named command without running it.
func (r *Registry) Check(name string, args json.RawMessage) error {
	s, err := r.lookup(name)
	if err != nil {
		return err
	}
	if s.Check == nil {
		return nil
	}
	return s.Check(args)
}

// Run executes the named command.
func (r *Registry) Run(ctx context.Context, ex *executor.Executor, name string, args json.RawMessage, opts ...executor.ExecOption) (executor.Result, error) {
	s, err := r.lookup(name)
	if err != nil {
		return executor.Result{}, err
	}
	return s.Run(ctx, ex, args, opts...)
}

func (r *Registry) lookup(name string) (Spec, error) {
	if s, ok := r.specs[name]; ok {
		return s, nil
	}
	names := make([]string, 0, len(r.specs))
	for _, s := range r.All() {
		names = append(names, s.Name)
	}
	return Spec{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownCommand, name, strings.Join(names, ", "))
}

// define builds a Spec from a parser, so that Run and Check share one
// decoding path and cannot disagree about what is valid.
func define[S any](name, shape, summary string, parse func(args json.RawMessage) (executor.Command[S], error)) Spec {
	return Spec{
		Name:    name,
		Args:    shape,
		Summary: summary,
		Run: func(ctx context.Context, ex *executor.Executor, args json.RawMessage, opts ...executor.ExecOption) (executor.Result, error) {
			cmd, err := parse(args)
			if err != nil {
				return executor.Result{}, err
			}
			return executor.Execute(ctx, ex, cmd, append(opts, executor.WithFingerprint(requestFingerprint(name, args)))...)
		},
		Check: func(args json.RawMessage) error {
			_, err := parse(args)
			return err
		},
	}
}

// requestFingerprint is what an idempotency key is stored with: the
// command's name and its arguments with insignificant whitespace removed,
// so a client that retries with the same request gets the first result
// and one that reuses a key for another request gets executor.ErrKeyReused.
func requestFingerprint(name string, args json.RawMessage) []byte {
	b := append([]byte(name), 0)
	var buf bytes.Buffer
	if json.Compact(&buf, args) == nil {
		return append(b, buf.Bytes()...)
	}
	return append(b, args...)
}
