package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/urfave/cli/v2"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/server"
)

// backend is where a command's reads and writes go: the database file,
// opened by this process, or the process that holds the file (its owner:
// evstore serve, a following evstore replicate, an application serving its
// store), through the socket beside it. Both give the same answers, so a
// command prints the same output, the same errors and exit codes either way.
//
// To let a new command work while an owner runs: open with openBackend
// instead of openStore, and use the methods below; if it needs something
// new, add a method here, implement it on fileBackend with the store and on
// ownerBackend with a server.Client call (adding the endpoint to server/ if
// there is none).
type backend interface {
	// exec runs a registered command; the outcome carries any failure.
	exec(ctx context.Context, reg *commands.Registry, name string, args json.RawMessage, key string) outcome
	readStream(ctx context.Context, stream string, from uint64) iter.Seq2[format.Event, error]
	readAll(ctx context.Context, from uint64) iter.Seq2[format.Event, error]
	// status is the store's id and head.
	status(ctx context.Context) (id string, head uint64, err error)
	stats(ctx context.Context) (local.Stats, error)
	// streams lists at most limit streams (0: all) whose names start with prefix.
	streams(ctx context.Context, prefix string, limit uint64) iter.Seq2[local.StreamInfo, error]
	// subscribe yields the log from position from on, then each event as
	// it commits, until ctx ends; through an owner, an error wrapping
	// server.ErrUnreachable means it has gone.
	subscribe(ctx context.Context, from uint64) iter.Seq2[format.Event, error]
	// store is the open store, nil through an owner.
	store() *local.Store
	// close releases the backend; a failure is reported if *err is nil.
	close(err *error)
}

// openBackend finds the database named by --db: through its owner's socket
// if a process holds it and serves one, else by opening the file (with
// mustExist as for openStore; read-only for commands that only read). A socket nobody answers (its owner was
// killed) is ignored, and the file opened directly.
func openBackend(c *cli.Context, mustExist, readOnly bool) (backend, error) {
	path := dbPath(c)
	sock := server.SocketPath(path)
	if b := dialOwner(c.Context, path, sock); b != nil {
		return withFallback(b, c, mustExist), nil
	}
	store, err := openDB(c, mustExist, readOnly)
	if errors.Is(err, local.ErrLocked) {
		// The owner may have taken the lock and not be listening yet (the
		// lock wait gave it a second), or have just started: ask again.
		if b := dialOwner(c.Context, path, sock); b != nil {
			return withFallback(b, c, mustExist), nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &fileBackend{s: store}, nil
}

func dialOwner(ctx context.Context, path, sock string) *ownerBackend {
	client, err := server.DialSocket(ctx, sock)
	if err != nil {
		return nil
	}
	return &ownerBackend{c: client, path: path}
}

// withFallback lets an owner backend open the file itself when the owner
// goes away before a request reaches it (a file of commands outlives it).
func withFallback(b backend, c *cli.Context, mustExist bool) backend {
	if ob, ok := b.(*ownerBackend); ok {
		ob.fallback = func() (backend, error) {
			store, err := openStore(c, mustExist)
			if err != nil {
				return nil, err
			}
			return &fileBackend{s: store}, nil
		}
	}
	return b
}

// fileBackend is a database this process opened.
type fileBackend struct {
	s  *cliStore
	ex *executor.Executor // made at the first exec, then kept so its caches serve a file of commands
}

func (b *fileBackend) exec(ctx context.Context, reg *commands.Registry, name string, args json.RawMessage, key string) outcome {
	if b.ex == nil {
		b.ex = executor.New(b.s.Store, executor.Options{})
	}
	return execute(ctx, b.ex, reg, name, args, key)
}

func (b *fileBackend) readStream(_ context.Context, stream string, from uint64) iter.Seq2[format.Event, error] {
	return b.s.ReadStream(stream, from)
}

func (b *fileBackend) readAll(_ context.Context, from uint64) iter.Seq2[format.Event, error] {
	return b.s.ReadAll(from)
}

func (b *fileBackend) status(context.Context) (string, uint64, error) {
	return b.s.ID(), b.s.Head(), nil
}

func (b *fileBackend) stats(context.Context) (local.Stats, error) { return b.s.Stats() }

func (b *fileBackend) streams(_ context.Context, prefix string, limit uint64) iter.Seq2[local.StreamInfo, error] {
	return func(yield func(local.StreamInfo, error) bool) {
		var n uint64
		for si, err := range b.s.Streams(prefix) {
			if !yield(si, err) || err != nil {
				return
			}
			if n++; n == limit {
				return
			}
		}
	}
}

func (b *fileBackend) subscribe(ctx context.Context, from uint64) iter.Seq2[format.Event, error] {
	return b.s.Subscribe(ctx, from)
}

func (b *fileBackend) store() *local.Store { return b.s.Store }

func (b *fileBackend) close(err *error) { closeStore(b.s, err) }

// ownerBackend is a database another process holds and serves.
type ownerBackend struct {
	c        *server.Client
	path     string
	fallback func() (backend, error) // opens the file; nil: none
	file     backend                 // the file, once the owner has gone
}

func (b *ownerBackend) exec(ctx context.Context, reg *commands.Registry, name string, args json.RawMessage, key string) outcome {
	if b.file != nil {
		return b.file.exec(ctx, reg, name, args, key)
	}
	o := outcome{Command: name, Key: key}
	res, err := b.c.Exec(ctx, name, args, key)
	if errors.Is(err, server.ErrNoOwner) && b.fallback != nil {
		// Refused before anything was sent: the owner has gone, and
		// with it the lock. Go on with the file.
		if f, ferr := b.fallback(); ferr == nil {
			b.file = f
			return f.exec(ctx, reg, name, args, key)
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// The owner may have taken the request up before the client gave
		// up: unlike a local interruption, this one is ambiguous.
		o.Error = fmt.Sprintf("%s interrupted: the process holding %s may or may not have committed it; run it again with the same --key (or check with 'evstore read')", name, b.path)
		o.ExitCode = exitFailure
		return o
	case errors.Is(err, server.ErrUnreachable):
		// Unlike every other failure, this one may follow a commit.
		o.Error = fmt.Sprintf("%s: the process holding %s stopped answering (%v): the command may or may not have been committed; run it again with the same --key (or check with 'evstore read')", name, b.path, err)
		o.ExitCode = exitFailure
		return o
	case err != nil:
		return o.fail(name, err)
	}
	o.OK, o.Position, o.Retries, o.Duplicate, o.events = true, res.Position, res.Retries, res.Duplicate, res.Events
	return o
}

func (b *ownerBackend) readStream(ctx context.Context, stream string, from uint64) iter.Seq2[format.Event, error] {
	return b.c.ReadStream(ctx, stream, from)
}

func (b *ownerBackend) readAll(ctx context.Context, from uint64) iter.Seq2[format.Event, error] {
	return b.c.ReadAll(ctx, from, nil)
}

func (b *ownerBackend) status(ctx context.Context) (string, uint64, error) {
	st, err := b.c.Status(ctx)
	if err != nil {
		return "", 0, failuref(err, "asking the process holding %s: %v", b.path, err)
	}
	return st.StoreID, st.Head, nil
}

func (b *ownerBackend) stats(ctx context.Context) (local.Stats, error) {
	return b.c.Stats(ctx)
}

func (b *ownerBackend) streams(ctx context.Context, prefix string, limit uint64) iter.Seq2[local.StreamInfo, error] {
	return b.c.Streams(ctx, prefix, limit)
}

func (b *ownerBackend) subscribe(ctx context.Context, from uint64) iter.Seq2[format.Event, error] {
	return b.c.Subscribe(ctx, from)
}

func (b *ownerBackend) store() *local.Store { return nil }

func (b *ownerBackend) close(err *error) {
	b.c.Close()
	if b.file != nil {
		b.file.close(err)
	}
}

// ownerStatus fills in the local side of a replication status from the
// process holding the database, as replicate.Status does from a store.
func ownerStatus(ctx context.Context, info *replicate.StatusInfo, b backend) error {
	id, head, err := b.status(ctx)
	if err != nil {
		return err
	}
	info.StoreID, info.LocalHead = id, head
	if info.Exists && (info.RemoteStoreID != id || info.Replicated > head) {
		return nil // the replicator refuses such a source and says why
	}
	if head > info.Replicated {
		info.LagEvents = head - info.Replicated
		for ev, err := range b.readAll(ctx, info.Replicated+1) {
			if err != nil {
				return failuref(err, "status: %v", err)
			}
			info.LagSeconds = max(0, info.Checked.Sub(ev.Time).Seconds())
			break
		}
	}
	return nil
}

// commandList is what 'evstore commands' lists: the commands of the
// process holding the database if one serves it (an application may have
// registered its own), else the built-in ones. It never opens the file.
func commandList(c *cli.Context, reg *commands.Registry) ([]server.CommandInfo, error) {
	path := dbPath(c)
	if b := dialOwner(c.Context, path, server.SocketPath(path)); b != nil {
		defer b.c.Close()
		list, err := b.c.Commands(c.Context)
		if err != nil {
			return nil, failuref(err, "commands: asking the process holding %s: %v", path, err)
		}
		return list, nil
	}
	var out []server.CommandInfo
	for _, s := range reg.All() {
		out = append(out, server.CommandInfo{Name: s.Name, Args: s.Args, Summary: s.Summary})
	}
	return out, nil
}
