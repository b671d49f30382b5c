package cli

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evstore/evstore/commands"
	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/projection"
)

// failAt is a projection that fails at one position.
type failAt struct{ at uint64 }

func (failAt) Name() string { return "fails" }
func (f failAt) Apply(tx *projection.Tx, ev format.Event) error {
	if ev.Position == f.at {
		return errors.New("cannot handle\nthis event")
	}
	return tx.Put([]byte("last"), []byte(ev.Type))
}

func TestProjections(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"bank.open", `{"account":"a","owner":"A"}`})
	runCLI(t, "", "--db", db, "projections").want(t, 0, []string{"no projections in", "log head 1"}, nil)
	runCLI(t, "", "--db", db, "projections", "--json").want(t, 0, nil, nil)

	s, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := projection.Run(ctx, s, commands.Balances{}, projection.Options{Once: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []format.EventData{{Stream: "x", Type: "T"}, {Stream: "x", Type: "T"}}); err != nil {
		t.Fatal(err)
	}
	if err := projection.Run(ctx, s, failAt{at: 3}, projection.Options{Once: true}); err == nil {
		t.Fatal("the failing projection did not fail")
	}
	s.Close()

	r := runCLI(t, "", "--db", db, "projections")
	r.want(t, 0, []string{"NAME", "bank.balances", "in-store", "2 events", "behind", "fails", "failed at 3: cannot handle this event", "log head 3"}, nil)
	r = runCLI(t, "", "--db", db, "projections", "--json")
	r.want(t, 0, nil, nil)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per projection: %q", r.stdout)
	}
	var in projection.Info
	if err := json.Unmarshal([]byte(lines[0]), &in); err != nil || in.Name != "bank.balances" || in.Position != 1 || in.Lag != 2 || in.State != projection.StateBehind {
		t.Errorf("first line %+v, %v", in, err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &in); err != nil || in.Name != "fails" || in.State != projection.StateFailed || in.ErrorPosition != 3 || in.Position != 2 {
		t.Errorf("second line %+v, %v", in, err)
	}
}

func TestProjectionsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	runCLI(t, "", "--db", missing, "projections").want(t, 1, nil, []string{missing, "does not exist"})
	noFile(t, missing)
	runCLI(t, "", "projections", "extra").want(t, 2, nil, []string{"projections"})

	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	s, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCLI(t, "", "--db", db, "projections").want(t, 1, nil, []string{"in use by another process"})
}
