package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestBackup(t *testing.T) {
	db := bankDB(t)
	dest := filepath.Join(t.TempDir(), "b.db")
	before := sum(t, db)
	r := runCLI(t, "", "--db", db, "backup", dest)
	r.want(t, 0, []string{"written to " + dest, "5 events", "2 streams", "verified"}, nil)
	if sum(t, db) != before {
		t.Error("backup changed the database")
	}
	runCLI(t, "", "--db", dest, "verify").want(t, 0, []string{"5 events", "OK"}, nil)

	// An existing destination needs --force.
	r = runCLI(t, "", "--db", db, "backup", dest)
	r.want(t, 1, nil, []string{"exists", "pass --force to replace it"})
	mustExec(t, db, [2]string{"bank.deposit", `{"account":"b","amount":1}`})
	r = runCLI(t, "", "--db", db, "backup", "--force", "--json", dest)
	r.want(t, 0, nil, nil)
	var got copyResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Head != 6 || !got.Verified || got.Path != dest {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dest))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}

	runCLI(t, "", "--db", db, "backup").want(t, 2, nil, []string{"backup: missing the DEST"})
	runCLI(t, "", "--db", db, "backup", "x", "y").want(t, 2, nil, []string{"too many arguments"})
	runCLI(t, "", "--db", filepath.Join(t.TempDir(), "none.db"), "backup", dest+"2").want(t, 1, nil, []string{"does not exist"})
}
