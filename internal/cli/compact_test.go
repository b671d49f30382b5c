package cli

import (
	"path/filepath"
	"testing"
)

func TestCompact(t *testing.T) {
	db := bankDB(t)
	dest := filepath.Join(t.TempDir(), "c.db")
	before := sum(t, db)
	runCLI(t, "", "--db", db, "compact", dest).want(t, 0, []string{"compacted copy", "5 events", "verified"}, nil)
	if sum(t, db) != before {
		t.Error("compact changed the database")
	}
	a := runCLI(t, "", "--db", db, "log", "--json")
	b := runCLI(t, "", "--db", dest, "log", "--json")
	if a.stdout != b.stdout || a.stdout == "" {
		t.Errorf("the compacted copy reads differently:\n%s\n%s", a.stdout, b.stdout)
	}
	runCLI(t, "", "--db", db, "compact", dest).want(t, 1, nil, []string{"pass --force"})
	runCLI(t, "", "--db", db, "compact").want(t, 2, nil, []string{"compact: missing the DEST"})
}
