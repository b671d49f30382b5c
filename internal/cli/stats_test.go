package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/evstore/evstore/local"
)

func TestStats(t *testing.T) {
	db := bankDB(t)
	runCLI(t, "", "--db", db, "stats").want(t, 0, []string{"events       5 (head 5)", "streams      2", "keys         0", "free pages"}, nil)
	r := runCLI(t, "", "--db", db, "stats", "--json")
	var st local.Stats
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Events != 5 || st.Streams != 2 || st.LastCommit.IsZero() || st.StoreID == "" {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	runCLI(t, "", "--db", db, "stats", "x").want(t, 2, nil, []string{"stats: too many arguments"})
}

// TestStatsThroughOwner: stats prints the same, --json the same fields
// and values, whether it opens the file or asks the process holding it,
// before and after that process wrote.
func TestStatsThroughOwner(t *testing.T) {
	db := bankDB(t)
	steps := [][]string{{"stats"}, {"stats", "--json"}, {"stats", "x"}}
	run := func() (out []result) {
		for _, args := range steps {
			out = append(out, runCLI(t, "", append([]string{"--db", db}, args...)...))
		}
		return out
	}
	compare := func(file, owner []result) {
		t.Helper()
		for i, args := range steps {
			if file[i] != owner[i] {
				t.Errorf("%v differs:\nfile:  %d %q %q\nowner: %d %q %q", args, file[i].code, file[i].stdout, file[i].stderr, owner[i].code, owner[i].stdout, owner[i].stderr)
			}
		}
	}
	file := run()
	_, stop := ownDBUntil(t, db)
	compare(file, run())
	mustExec(t, db, [2]string{"bank.deposit", `{"account":"a","amount":5}`}, [2]string{"bank.deposit", `{"account":"b","amount":7}`})
	owner := run()
	stop()
	compare(run(), owner)
	if !strings.Contains(owner[0].stdout, "events       7 (head 7)") {
		t.Fatalf("the owner's writes are not counted: %q", owner[0].stdout)
	}
}
