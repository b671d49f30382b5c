package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/executor"
	"github.com/evstore/evstore/local"
)

// Defaults for zero [Options] fields.
const (
	DefaultMaxBodyBytes   = 8 << 20
	DefaultMaxPage        = 1000
	DefaultRequestTimeout = 30 * time.Second
	DefaultShutdownWait   = 10 * time.Second
	DefaultMaxSubscribers = 256
	// MaxPageLimit is the largest page a reader may ask for with ?limit=.
	MaxPageLimit = 10_000
	// SocketSuffix is added to the database path to name its socket.
	SocketSuffix = ".sock"
)

// Options configure a [Server] or a [Handler]. The zero value serves the
// built-in commands on the socket beside the database.
type Options struct {
	// Registry holds the commands POST /v1/commands/{name} runs. Default:
	// commands.Builtin().
	Registry *commands.Registry
	// Executor runs them. Default: executor.New(store, executor.Options{}).
	// Pass the application's own to share its caches.
	Executor *executor.Executor
	// Socket is the Unix socket path. Default: the database path plus
	// SocketSuffix. "-" serves no socket (then TCPAddr must be set).
	Socket string
	// TCPAddr, if set, also serves the API on TCP (e.g. "127.0.0.1:8080";
	// a port alone, ":8080", binds 127.0.0.1). It requires Token.
	TCPAddr string
	// Token is the bearer token TCP clients must send
	// ("Authorization: Bearer TOKEN"). Required with TCPAddr.
	Token string
	// MaxBodyBytes caps a request body. Default 8 MiB.
	MaxBodyBytes int64
	// MaxPage caps the events of one read answer when the client gives no
	// ?limit=. Default 1000.
	MaxPage int
	// RequestTimeout bounds every request but subscribe. Default 30s.
	RequestTimeout time.Duration
	// MaxSubscribers caps concurrent subscribe streams. Default 256.
	MaxSubscribers int
	// ShutdownWait is how long Serve lets in-flight requests finish after
	// its context ends. Default 10s.
	ShutdownWait time.Duration
	// Status, if set, adds fields to GET /v1/status (for example the
	// in-process replicator's position); it is called per request.
	Status func(ctx context.Context) map[string]any
	// Logger receives one line per failed request and lifecycle events.
	// Default: discard.
	Logger *slog.Logger
}

// ErrNoToken is returned by [Listen] for a TCP address without a token.
var ErrNoToken = errors.New("a TCP listener needs a token")

func (o Options) withDefaults(store *local.Store) Options {
	if o.Registry == nil {
		o.Registry = commands.Builtin()
	}
	if o.Executor == nil {
		o.Executor = executor.New(store, executor.Options{})
	}
	if o.Socket == "" {
		o.Socket = SocketPath(store.Path())
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxPage <= 0 {
		o.MaxPage = DefaultMaxPage
	}
	o.MaxPage = min(o.MaxPage, MaxPageLimit)
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxSubscribers <= 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.ShutdownWait <= 0 {
		o.ShutdownWait = DefaultShutdownWait
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// SocketPath is the socket an owner of the database at dbPath serves.
func SocketPath(dbPath string) string { return dbPath + SocketSuffix }

// Server serves one store on its socket and, if asked, on TCP.
type Server struct {
	store     *local.Store
	opts      Options
	listeners []net.Listener
	socket    string // to remove on shutdown; "" if none
	servers   []*http.Server
	closing   chan struct{} // closed when shutdown starts; ends subscribe streams
	closeOnce sync.Once
}

// Listen binds the socket (removing one a dead owner left) and, with
// Options.TCPAddr, the TCP address. Nothing is served until [Server.Serve].
// The caller must own store: the socket promises that this process holds
// the file.
func Listen(store *local.Store, opts Options) (*Server, error) {
	opts = opts.withDefaults(store)
	s := &Server{store: store, opts: opts, closing: make(chan struct{})}
	if opts.TCPAddr != "" && opts.Token == "" {
		return nil, fmt.Errorf("listen on %s: %w: set Options.Token (clients send it as a bearer token)", opts.TCPAddr, ErrNoToken)
	}
	if opts.Socket != "-" {
		ln, err := listenSocket(opts.Socket)
		if err != nil {
			return nil, err
		}
		s.socket = opts.Socket
		s.listeners = append(s.listeners, ln)
		s.servers = append(s.servers, s.httpServer(handler(store, opts, false, s.closing)))
	}
	if opts.TCPAddr != "" {
		addr := LoopbackDefault(opts.TCPAddr)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		s.listeners = append(s.listeners, ln)
		s.servers = append(s.servers, s.httpServer(handler(store, opts, true, s.closing)))
	}
	if len(s.listeners) == 0 {
		return nil, errors.New("server: nothing to listen on: Options.Socket is \"-\" and Options.TCPAddr is empty")
	}
	return s, nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       s.opts.RequestTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
}

// Socket is the Unix socket path served, "" if none.
func (s *Server) Socket() string { return s.socket }

// Addrs are the addresses served, the socket first.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// Serve answers requests until ctx ends, then stops accepting, lets
// in-flight requests finish (up to Options.ShutdownWait; subscribers are
// cut), removes the socket and returns nil. It does not close the store.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.servers))
	for i, srv := range s.servers {
		go func() {
			if err := srv.Serve(s.listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
				return
			}
			errc <- nil
		}()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	s.shutdown()
	if first != nil {
		return fmt.Errorf("serve: %w", first)
	}
	return nil
}

func (s *Server) shutdown() {
	// Subscribers never finish by themselves: end them first, so that
	// Shutdown waits only for requests that do.
	s.closeOnce.Do(func() { close(s.closing) })
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownWait)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Go(func() {
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		})
	}
	wg.Wait()
	s.close()
}

func (s *Server) close() {
	for _, ln := range s.listeners {
		ln.Close()
	}
	if s.socket != "" {
		removeSocket(s.socket)
	}
}

// Serve listens as [Listen] does and serves until ctx ends.
func Serve(ctx context.Context, store *local.Store, opts Options) error {
	s, err := Listen(store, opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Handler is the API as an http.Handler, for a program that runs its own
// http.Server. With Options.Token set every request must carry it.
func Handler(store *local.Store, opts Options) http.Handler {
	opts = opts.withDefaults(store)
	return handler(store, opts, opts.Token != "", nil)
}

// checkToken compares in constant time; hashing first makes the time
// independent of the token's length too.
func checkToken(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// maxSocketPath is the longest socket path accepted everywhere evstore runs.
const maxSocketPath = 103

// removeSocket removes path if it is a socket (never a file someone put
// there by mistake).
func removeSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
}

// listenSocket binds a Unix socket at path, first removing a socket left
// by an owner that died. The caller holds the database's lock, so no live
// owner can be behind it.
func listenSocket(path string) (net.Listener, error) {
	// Linux takes 107 bytes, macOS 103; the bind error would not say why.
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen on %s: the socket path is %d bytes, more than the %d the OS takes: keep the database at a shorter path, or set Options.Socket (clients then need that path)", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: the path exists and is not a socket: remove it or set Options.Socket", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // removeSocket does it, after checking
	if err := restrictSocket(path); err != nil {
		ln.Close()
		removeSocket(path)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return peerChecked(ln), nil
}
