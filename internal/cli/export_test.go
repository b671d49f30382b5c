package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExportImport(t *testing.T) {
	db := bankDB(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "x.evx")
	before := sum(t, db)
	runCLI(t, "", "--db", db, "export", file).want(t, 0, []string{"exported positions 1..5", "1 frame,"}, nil)
	if sum(t, db) != before {
		t.Error("export changed the database")
	}
	copyDB := filepath.Join(dir, "copy.db")
	runCLI(t, "", "--db", copyDB, "import", file).want(t, 0, []string{"imported 5 events (positions 1..5)"}, nil)
	a := runCLI(t, "", "--db", db, "log", "--json")
	b := runCLI(t, "", "--db", copyDB, "log", "--json")
	if a.stdout != b.stdout {
		t.Fatalf("log --json differs:\n%s\n%s", a.stdout, b.stdout)
	}
	// Again: nothing new, all skipped.
	runCLI(t, "", "--db", copyDB, "import", file).want(t, 0, []string{"imported 0 events", "5 already present"}, nil)
	// Through stdout and stdin.
	out := runCLI(t, "", "--db", db, "export", "--from", "3", "-")
	if out.code != 0 || len(out.stdout) == 0 {
		t.Fatalf("export -: %d %s", out.code, out.stderr)
	}
	runCLI(t, out.stdout, "--db", filepath.Join(dir, "piped.db"), "import", "-").want(t, 1, nil, []string{"starts at position 3, the log ends at 0", "nothing was imported"})
	if _, err := os.Stat(filepath.Join(dir, "piped.db")); err == nil {
		t.Error("a refused import left a database behind")
	}
	// A flipped byte is found, with its frame, and nothing is imported.
	raw, _ := os.ReadFile(file)
	raw[len(raw)-40] ^= 1
	bad := filepath.Join(dir, "bad.evx")
	os.WriteFile(bad, raw, 0o600)
	runCLI(t, "", "--db", filepath.Join(dir, "bad.db"), "import", bad).want(t, 1, nil, []string{"frame 1", "nothing was imported"})

	runCLI(t, "", "--db", db, "export", file).want(t, 1, nil, []string{"exists: pass --force"})
	runCLI(t, "", "--db", db, "export").want(t, 2, nil, []string{"export: missing the FILE"})
	runCLI(t, "", "--db", db, "export", "--from", "4", "--to", "2", file).want(t, 2, nil, []string{"--to 2 is before --from 4"})
}
