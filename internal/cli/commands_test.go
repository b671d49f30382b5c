package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/evstore/evstore/commands"
)

func TestCommandsList(t *testing.T) {
	db := tempDB(t)
	r := runCLI(t, "", "--db", db, "commands")
	var want []string
	for _, s := range commands.Builtin().All() {
		want = append(want, s.Name, s.Args)
	}
	r.want(t, 0, append(want, "evstore exec NAME"), nil)

	r = runCLI(t, "", "--db", db, "commands", "--json")
	r.want(t, 0, nil, nil)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(commands.Builtin().All()) {
		t.Fatalf("%d lines, want one per command: %q", len(lines), r.stdout)
	}
	for _, l := range lines {
		var c struct{ Name, Args, Summary string }
		if err := json.Unmarshal([]byte(l), &c); err != nil || c.Name == "" || c.Args == "" || c.Summary == "" {
			t.Errorf("line %q: %+v, %v", l, c, err)
		}
	}

	runCLI(t, "", "commands", "extra").want(t, 2, nil, []string{"commands: too many arguments"})
	runCLI(t, "", "commands", "x", "--json").want(t, 2, nil, []string{"flag --json after the arguments"})
	noFile(t, db) // listing commands needs no database
}
