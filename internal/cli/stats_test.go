package cli

import (
	"encoding/json"
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
