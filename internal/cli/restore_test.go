package cli

import (
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

func TestRestoreUsage(t *testing.T) {
	t.Setenv(pgURLEnv, "")
	db := tempDB(t)
	runCLI(t, "", "--db", db, "restore", "--source", "x").want(t, 2, nil, []string{"restore: --from postgres://… is required"})
	runCLI(t, "", "--db", db, "restore", "--from", "postgres://localhost/x").want(t, 2, nil, []string{"restore: --source NAME is required"})
	runCLI(t, "", "--db", db, "restore", "x").want(t, 2, nil, []string{"restore: too many arguments"})
	runCLI(t, "", "--db", db, "restore", "--source", "x", "--from", "postgres://u@h:notaport/db").want(t, 2, nil, []string{"restore: --from is not a usable PostgreSQL URL"})
}

func TestRestore(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := bankDB(t)
	var logs strings.Builder // replicate logs on stderr
	if code := Run(t.Context(), []string{"evstore", "--db", db, "replicate", "--once", "--layout", "frames", "--to", url, "--schema", schema, "--source", "till"}, strings.NewReader(""), io.Discard, &logs); code != 0 {
		t.Fatalf("replicate: %d %s", code, logs.String())
	}
	into := filepath.Join(t.TempDir(), "restored.db")
	r := runCLI(t, "", "--db", into, "restore", "--from", url, "--schema", schema, "--source", "till", "--json")
	r.want(t, 0, nil, nil)
	var info replicate.RestoreInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Head != 5 || info.Path != into {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	a, b := runCLI(t, "", "--db", db, "log"), runCLI(t, "", "--db", into, "log")
	if a.stdout != b.stdout {
		t.Fatalf("restored log differs:\n%s\n%s", a.stdout, b.stdout)
	}
	runCLI(t, "", "--db", into, "restore", "--from", url, "--schema", schema, "--source", "till").want(t, 1, nil, []string{"exists", "pass another --db"})
	runCLI(t, "", "--db", into+"2", "restore", "--from", url, "--schema", schema, "--source", "nope").want(t, 1, nil, []string{`no such source for source "nope"`, "check --source and --schema"})
}
