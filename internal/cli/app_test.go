package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/local"
)

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the CLI in-process, as "evstore args...".
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCLIContext(t, context.Background(), stdin, args...)
}

func runCLIContext(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr strings.Builder
	code := Run(ctx, append([]string{"evstore"}, args...), strings.NewReader(stdin), &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	checkStderr(t, r)
	return r
}

// checkStderr enforces the error contract: nothing on stderr on success,
// otherwise exactly one "evstore: " line and no library noise.
func checkStderr(t *testing.T, r result) {
	t.Helper()
	if r.code == 0 {
		// A success may leave one note ("no events ..."), never an error.
		if r.stderr != "" && (!strings.HasPrefix(r.stderr, "evstore: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no events")) {
			t.Errorf("exit 0 with stderr %q", r.stderr)
		}
		return
	}
	if !strings.HasPrefix(r.stderr, "evstore: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr is not one evstore: line: %q", r.stderr)
	}
	for _, noise := range []string{"Incorrect Usage", "goroutine ", "panic", "NAME:"} {
		if strings.Contains(r.stderr+r.stdout, noise) {
			t.Errorf("output contains %q: stdout %q stderr %q", noise, r.stdout, r.stderr)
		}
	}
}

func (r result) want(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stdout %q, stderr %q)", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout %q lacks %q", r.stdout, s)
		}
	}
	for _, s := range stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q lacks %q", r.stderr, s)
		}
	}
}

func tempDB(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "test.db")
}

// head opens the database and returns its last position; 0 if the file
// does not exist.
func head(t *testing.T, path string) uint64 {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	store, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	return store.Head()
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (err %v), want it not created", path, err)
	}
}

// mustExec runs exec commands that must succeed, as test setup.
func mustExec(t *testing.T, db string, cmds ...[2]string) {
	t.Helper()
	for _, c := range cmds {
		if r := runCLI(t, "", "--db", db, "exec", c[0], c[1]); r.code != 0 {
			t.Fatalf("exec %s %s: %d %s", c[0], c[1], r.code, r.stderr)
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"no command", nil, 2, nil, []string{"no command given", "evstore help", "exec, read, log, commands"}},
		{"unknown command", []string{"frobnicate"}, 2, nil, []string{`unknown command "frobnicate"`, "evstore help"}},
		{"unknown global flag", []string{"--nope", "log"}, 2, nil, []string{"flag provided but not defined: -nope", "evstore help"}},
		{"unknown command flag", []string{"log", "--nope"}, 2, nil, []string{"log: flag provided but not defined: -nope", "evstore log --help"}},
		{"bad flag value", []string{"log", "--limit", "x"}, 2, nil, []string{`invalid value "x" for flag -limit`}},
		{"help topic not found", []string{"help", "nosuch"}, 2, nil, []string{`no help topic "nosuch"`}},
		{"help", []string{"help"}, 0, []string{"exec", "read", "log", "commands", "--db PATH"}, nil},
		{"--help", []string{"--help"}, 0, []string{"Exit codes: 0 success, 1 failure, 2 usage error"}, nil},
		{"command help", []string{"exec", "--help"}, 0, []string{"evstore exec [--key KEY] [--json] NAME [ARGS-JSON]", "--file FILE, -f FILE"}, nil},
		{"help command", []string{"help", "read"}, 0, []string{"evstore read [--from VERSION] [--json] [--skip-damaged] STREAM"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := tempDB(t)
			r := runCLI(t, "", append([]string{"--db", db}, tt.args...)...)
			r.want(t, tt.code, tt.stdout, tt.stderr)
			noFile(t, db)
		})
	}
}

func TestDBFlag(t *testing.T) {
	dir := t.TempDir()
	global, local, env := filepath.Join(dir, "global.db"), filepath.Join(dir, "local.db"), filepath.Join(dir, "env.db")
	args := []string{"counter.increment", `{"counter":"c"}`}
	runCLI(t, "", append([]string{"--db", global, "exec"}, args...)...).want(t, 0, nil, nil)
	runCLI(t, "", append([]string{"exec", "--db", local}, args...)...).want(t, 0, nil, nil)
	// The command's own --db wins over the global one.
	runCLI(t, "", append([]string{"--db", global, "exec", "--db", local}, args...)...).want(t, 0, nil, nil)
	t.Setenv("EVSTORE_DB", env)
	runCLI(t, "", append([]string{"exec"}, args...)...).want(t, 0, nil, nil)
	runCLI(t, "", "read", "counter-c").want(t, 0, []string{"counter-c  v1"}, nil)
	if h := [3]uint64{head(t, global), head(t, local), head(t, env)}; h != [3]uint64{1, 2, 1} {
		t.Errorf("heads global, local, env = %v, want [1 2 1]", h)
	}
}

func TestDefaultDB(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("EVSTORE_DB", "")
	os.Unsetenv("EVSTORE_DB")
	runCLI(t, "", "read", "x").want(t, 1, nil, []string{"database ./evstore.db does not exist"})
	runCLI(t, "", "exec", "counter.increment", `{"counter":"c"}`).want(t, 0, nil, nil)
	if head(t, "evstore.db") != 1 {
		t.Error("exec did not write ./evstore.db")
	}
}

// TestLocked checks that a database held by another process (here: another
// Store in this process, which takes the same file lock) fails fast with a
// message that says what to do, and writes nothing.
func TestLocked(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	store, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, args := range [][]string{
		{"exec", "counter.increment", `{"counter":"c"}`},
		{"read", "counter-c"},
		{"log"},
	} {
		start := time.Now()
		r := runCLI(t, "", append([]string{"--db", db}, args...)...)
		r.want(t, 1, nil, []string{"evstore: database " + db + " is in use by another process: close it or pass another --db"})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v took %v", args, d)
		}
	}
	if store.Head() != 1 {
		t.Errorf("head %d after locked runs, want 1", store.Head())
	}
}

func TestInterrupted(t *testing.T) {
	db := tempDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := runCLIContext(t, ctx, "", "--db", db, "exec", "counter.increment", `{"counter":"c"}`)
	r.want(t, 1, nil, []string{"interrupted", "nothing was written"})
	if head(t, db) != 0 {
		t.Error("an interrupted exec wrote")
	}
	r = runCLIContext(t, ctx, `{"command":"counter.increment","args":{"counter":"c"}}`+"\n", "--db", db, "exec", "-f", "-")
	r.want(t, 1, []string{"0 ok, 0 failed (interrupted)"}, []string{"interrupted"})
}
