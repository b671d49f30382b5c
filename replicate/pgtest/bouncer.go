package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BouncerEnvVar names the variable that makes the PgBouncer tests
// mandatory: with EVSTORE_TEST_PGBOUNCER=1 a missing pgbouncer binary
// fails them (CI installs it); without it they run when the binary is
// found and skip otherwise.
const BouncerEnvVar = "EVSTORE_TEST_PGBOUNCER"

// BouncerUserEnvVar names the user pgbouncer runs as when the tests run as
// root (pgbouncer refuses root). Default: postgres, else nobody.
const BouncerUserEnvVar = "EVSTORE_TEST_PGBOUNCER_USER"

// Bouncer is a real pgbouncer in transaction pooling mode in front of the
// test server, on a spare port of 127.0.0.1, with trust authentication.
type Bouncer struct {
	t        testing.TB
	bin      string
	dir      string
	port     int
	upstream *url.URL

	mu     sync.Mutex
	cmd    *exec.Cmd
	log    *os.File
	exited chan error
}

// BouncerOptions size the pool.
type BouncerOptions struct {
	PoolSize      int // server connections per database and user; default 20
	MaxClientConn int // default 2000
}

// StartBouncer starts pgbouncer for the test (stopped at cleanup) or skips
// the test when it cannot be found and EVSTORE_TEST_PGBOUNCER is not 1.
func StartBouncer(t testing.TB, o BouncerOptions) *Bouncer {
	t.Helper()
	raw := URL(t)
	bin := findBouncer()
	if bin == "" {
		if os.Getenv(BouncerEnvVar) == "1" {
			t.Fatalf("%s=1 but no pgbouncer binary in PATH or /usr/sbin: install the pgbouncer package (apt-get install pgbouncer)", BouncerEnvVar)
		}
		t.Skipf("PgBouncer tests are off: no pgbouncer binary (apt-get install pgbouncer, then set %s=1 to make them mandatory)", BouncerEnvVar)
	}
	up, err := url.Parse(raw)
	if err != nil || up.Scheme == "" {
		t.Fatalf("%s must be a postgres:// URL for the PgBouncer tests: %v", EnvVar, err)
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 20
	}
	if o.MaxClientConn <= 0 {
		o.MaxClientConn = 2000
	}
	dir, err := os.MkdirTemp("", "evstore-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove(filepath.Join(os.TempDir(), filepath.Base(dir)+".out"))
	})
	b := &Bouncer{t: t, bin: bin, dir: dir, port: sparePort(t), upstream: up}
	host, port := up.Hostname(), up.Port()
	if port == "" {
		port = "5432"
	}
	if host == "" {
		host = "127.0.0.1"
	}
	userName := up.User.Username()
	if userName == "" {
		userName = "postgres"
	}
	password, _ := up.User.Password()
	conf := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = %d
max_db_connections = %d
server_reset_query =
ignore_startup_parameters = extra_float_digits
admin_users = %s
stats_users = %s
logfile = %s
pidfile = %s
`, host, port, b.port, filepath.Join(dir, "users.txt"), o.PoolSize, o.MaxClientConn, o.PoolSize,
		userName, userName, filepath.Join(dir, "pgbouncer.log"), filepath.Join(dir, "pgbouncer.pid"))
	if password != "" {
		conf = strings.Replace(conf, "* = host=", "* = password="+password+" host=", 1)
	}
	write(t, filepath.Join(dir, "pgbouncer.ini"), conf)
	write(t, filepath.Join(dir, "users.txt"), fmt.Sprintf("%q %q\n", userName, ""))
	if os.Geteuid() == 0 {
		uid, gid := runAs(t)
		for _, p := range []string{dir, filepath.Join(dir, "pgbouncer.ini"), filepath.Join(dir, "users.txt")} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func findBouncer() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// runAs picks the unprivileged user pgbouncer runs as when the tests run
// as root.
func runAs(t testing.TB) (uid, gid int) {
	names := []string{"postgres", "nobody"}
	if n := os.Getenv(BouncerUserEnvVar); n != "" {
		names = []string{n}
	}
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		return uid, gid
	}
	t.Fatalf("pgbouncer refuses to run as root and none of the users %v exists: set %s", names, BouncerUserEnvVar)
	return 0, 0
}

func sparePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the test server's URL with pgbouncer's address instead.
func (b *Bouncer) URL() string {
	u := *b.upstream
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	return u.String()
}

// Start starts pgbouncer (again, after Stop or Kill) on the same port and
// waits until it accepts connections.
func (b *Bouncer) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return
	}
	cmd := exec.Command(b.bin, filepath.Join(b.dir, "pgbouncer.ini"))
	out, err := os.OpenFile(filepath.Join(os.TempDir(), filepath.Base(b.dir)+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	asUser(b.t, cmd)
	if err := cmd.Start(); err != nil {
		out.Close()
		b.t.Fatalf("start pgbouncer: %v", err)
	}
	b.cmd, b.log = cmd, out
	exited := make(chan error, 1)
	b.exited = exited
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second) // a deadlock guard, not a timing assumption
	for {
		select {
		case err := <-exited:
			b.cmd = nil
			b.t.Fatalf("pgbouncer exited at start (%v):\n%s", err, b.output())
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("pgbouncer does not accept connections on port %d after 20s:\n%s", b.port, b.output())
		}
		time.Sleep(20 * time.Millisecond) // polling a port, with the deadline above as the guard
	}
}

// Kill stops pgbouncer with SIGKILL: every client and server connection
// is cut at once, as in a crash of the pooler.
func (b *Bouncer) Kill() { b.stop(true) }

// Stop stops pgbouncer and waits for it.
func (b *Bouncer) Stop() { b.stop(false) }

func (b *Bouncer) stop(kill bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	if kill {
		b.cmd.Process.Kill()
	} else {
		b.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
	}
	b.cmd = nil
	b.log.Close()
}

func (b *Bouncer) output() string {
	var s []string
	for _, p := range []string{filepath.Join(os.TempDir(), filepath.Base(b.dir)+".out"), filepath.Join(b.dir, "pgbouncer.log")} {
		if d, err := os.ReadFile(p); err == nil {
			s = append(s, string(d))
		}
	}
	return strings.Join(s, "\n")
}

// ServerConns is how many server connections pgbouncer holds to the test
// database (SHOW POOLS: active, idle, used, tested, login).
func (b *Bouncer) ServerConns(ctx context.Context) (int, error) {
	u := *b.upstream
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	db := strings.TrimPrefix(u.Path, "/")
	u.Path = "/pgbouncer"
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return 0, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW POOLS")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return 0, err
		}
		fields := rows.FieldDescriptions()
		row := map[string]any{}
		for i, f := range fields {
			row[f.Name] = vals[i]
		}
		if row["database"] != db {
			continue
		}
		for _, k := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
			total += toInt(row[k])
		}
	}
	return total, rows.Err()
}

func toInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case int32:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}
