package cli

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/evstore/evstore/local"
)

func TestStatusLocalOnly(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`}, [2]string{"counter.increment", `{"counter":"c"}`})
	runCLI(t, "", "--db", db, "status").want(t, 0, []string{"local head  2", "replication not checked: pass --to"}, nil)
	r := runCLI(t, "", "--db", db, "status", "--json")
	var info struct {
		LocalHead uint64 `json:"local_head"`
		StoreID   string `json:"store_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.LocalHead != 2 || info.StoreID == "" {
		t.Fatalf("status --json: %v %+v", err, info)
	}
}

func TestStatusErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	runCLI(t, "", "--db", missing, "status").want(t, 1, nil, []string{missing})
	noFile(t, missing)
	runCLI(t, "", "--db", missing, "status", "extra").want(t, 2, nil, []string{"status: too many arguments (1)", "usage is 'evstore status"})
	runCLI(t, "", "--db", missing, "status", "--nope").want(t, 2, nil, []string{"status: flag provided but not defined: -nope", "run 'evstore status --help'"})

	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	s, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCLI(t, "", "--db", db, "status").want(t, 1, nil, []string{"in use by another process"})
}
