package cli

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
)

func TestFleetUsage(t *testing.T) {
	runCLI(t, "", "fleet").want(t, 2, nil, []string{"fleet: --to postgres://… is required"})
	runCLI(t, "", "fleet", "--to", "postgres://x/y", "more").want(t, 2, nil, []string{"fleet: too many arguments"})
	runCLI(t, "", "fleet", "--to", "postgres://x/y", "--silent-after", "0s").want(t, 2, nil, []string{"--silent-after must be positive"})
	runCLI(t, "", "fleet", "--to", "postgres://u:s3cret@h:abc/db").want(t, 2, nil, []string{"not a usable PostgreSQL URL"})
}

// TestFleet lists two replicated logs, one of which went silent (its last
// contact moved an hour back), in text and JSON; an empty schema is an
// error that names --schema.
func TestFleet(t *testing.T) {
	url, schema := pgtest.Schema(t)
	runCLI(t, "", "fleet", "--to", url, "--schema", schema).want(t, 1, nil, []string{"has no evstore tables", "--schema is wrong"})
	for _, src := range []string{"till-1", "till-2"} {
		db := tempDB(t)
		mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`}, [2]string{"counter.increment", `{"counter":"c"}`})
		s, err := local.Open(db, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = replicate.Run(context.Background(), s, replicate.Options{URL: url, Schema: schema, Source: src, Once: true})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	conn := pgtest.Conn(t, url)
	if _, err := conn.Exec(context.Background(), "UPDATE "+pgx.Identifier{schema}.Sanitize()+".sources SET last_seen = now() - interval '1 hour' WHERE name = 'till-2'"); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "fleet", "--to", url, "--schema", schema)
	r.want(t, 0, []string{"SOURCE", "till-1", "till-2", "1h0m ago SILENT", "2 sources, 1 silent for longer than 5m0s"}, nil)
	r = runCLI(t, "", "fleet", "--to", url, "--schema", schema, "--json", "--silent-after", "2h")
	var list []struct {
		Source     string `json:"source"`
		Replicated uint64 `json:"replicated"`
		DeviceHead uint64 `json:"device_head"`
		Silent     bool   `json:"silent"`
		Version    string `json:"version"`
		StoreID    string `json:"store_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("fleet --json: %v\n%s", err, r.stdout)
	}
	for _, s := range list {
		if s.Replicated != 2 || s.DeviceHead != 2 || s.Silent || s.Version == "" || s.StoreID == "" {
			t.Fatalf("fleet --json: %+v", s)
		}
	}
}
