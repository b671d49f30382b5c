package cli

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
	"github.com/evstore/evstore/replicate/pgtest"
	"github.com/evstore/evstore/server"
)

// ownDB opens db in this process and serves it on its socket, as evstore
// serve would, until the test ends.
func ownDB(t *testing.T, db string) *local.Store {
	t.Helper()
	store, stop := ownDBUntil(t, db)
	t.Cleanup(stop)
	return store
}

// ownDBUntil is ownDB until stop is called (at most once).
func ownDBUntil(t *testing.T, db string) (store *local.Store, stop func()) {
	t.Helper()
	store, err := local.Open(db, local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Listen(store, server.Options{})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return store, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		store.Close()
	}
}

// normalize hides what differs between two stores given the same commands:
// times, event ids, store ids, the database path.
func normalize(s, db string) string {
	s = strings.ReplaceAll(s, db, "DB")
	s = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+Z`).ReplaceAllString(s, "TIME")
	s = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).ReplaceAllString(s, "UUID")
	return regexp.MustCompile(`"checked":"[^"]*"`).ReplaceAllString(s, `"checked":"T"`)
}

// TestThroughOwnerSameAsFile runs the same commands on a database this
// process opens and on one another owner holds and serves: output, exit
// codes and error lines must be the same.
func TestThroughOwnerSameAsFile(t *testing.T) {
	file := tempDB(t)
	owned := tempDB(t)
	store := ownDB(t, owned)
	script := `{"command":"bank.open","args":{"account":"b","owner":"B"}}
{"command":"bank.deposit","args":{"account":"b","amount":5},"key":"d1"}
{"command":"bank.deposit","args":{"account":"b","amount":5},"key":"d1"}
{"command":"bank.withdraw","args":{"account":"b","amount":50}}
{"command":"nope"}
not json
`
	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"exec", "bank.open", `{"account":"a","owner":"Alice"}`}},
		{"", []string{"exec", "--key", "k", "bank.deposit", `{"account":"a","amount":100}`}},
		{"", []string{"exec", "--key", "k", "bank.deposit", `{"account":"a","amount":100}`}},
		{"", []string{"exec", "--json", "bank.deposit", `{"account":"a","amount":7}`}},
		{"", []string{"exec", "bank.withdraw", `{"account":"a","amount":100000}`}},
		{"", []string{"exec", "bank.deposit", `{"account":"a","amount":-3}`}},
		{"", []string{"exec", "bank.deposit", `{"account":"zz","amount":3}`}},
		{"", []string{"exec", "bank.rob", `{}`}},
		{"", []string{"exec", "append", `{"stream":"s","type":"T","data":"x","expect":5}`}},
		{"", []string{"exec", "append", `{"stream":"s","type":"T","data":{"k":[1,2]}}`}},
		{script, []string{"exec", "-f", "-"}},
		{script, []string{"exec", "--json", "-f", "-"}},
		{"", []string{"read", "account-a"}},
		{"", []string{"read", "--json", "--from", "2", "account-a"}},
		{"", []string{"read", "account-none"}},
		{"", []string{"read", "--from", "9", "s"}},
		{"", []string{"log"}},
		{"", []string{"log", "--json", "--from", "3", "--limit", "2"}},
		{"", []string{"log", "--from", "99"}},
		{"", []string{"status"}},
		{"", []string{"status", "--json"}},
		{"", []string{"commands"}},
		{"", []string{"commands", "--json"}},
	}
	for _, st := range steps {
		a := runCLI(t, st.stdin, append([]string{"--db", file}, st.args...)...)
		b := runCLI(t, st.stdin, append([]string{"--db", owned}, st.args...)...)
		if a.code != b.code || normalize(a.stdout, file) != normalize(b.stdout, owned) || normalize(a.stderr, file) != normalize(b.stderr, owned) {
			t.Errorf("%v differs:\nfile:  %d %q %q\nowner: %d %q %q", st.args, a.code, a.stdout, a.stderr, b.code, b.stdout, b.stderr)
		}
	}
	if store.Head() != head(t, file) || store.Head() == 0 {
		t.Fatalf("heads differ: owner %d, file %d", store.Head(), head(t, file))
	}
}

// TestStaleSocket: a socket left by a killed owner is ignored; the CLI
// opens the file itself.
func TestStaleSocket(t *testing.T) {
	db := tempDB(t)
	ln, err := net.Listen("unix", server.SocketPath(db))
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(server.SocketPath(db)); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "", "--db", db, "exec", "counter.increment", `{"counter":"c"}`).want(t, 0, []string{"at position 1"}, nil)
	runCLI(t, "", "--db", db, "read", "counter-c").want(t, 0, []string{"counter-c  v1"}, nil)
}

// waitOwner waits until db's owner answers on its socket.
func waitOwner(t *testing.T, db string, exited <-chan result) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // a deadlock guard, not a timing assertion
	for {
		if time.Now().After(deadline) {
			t.Fatal("the owner never answered on its socket")
		}
		if c, err := server.DialSocket(context.Background(), server.SocketPath(db)); err == nil {
			c.Close()
			return
		}
		select {
		case r := <-exited:
			t.Fatalf("the owner exited: %d %q", r.code, r.stderr)
		default:
		}
		waitABit()
	}
}

func dialTest(t *testing.T, db string) *server.Client {
	t.Helper()
	c, err := server.DialSocket(context.Background(), server.SocketPath(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestStatusThroughOwner: status --to reports the local side from the
// process holding the database.
func TestStatusThroughOwner(t *testing.T) {
	url, schema := pgtest.Schema(t)
	db := tempDB(t)
	store := ownDB(t, db)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`}, [2]string{"counter.increment", `{"counter":"c"}`})
	status := func() replicate.StatusInfo {
		t.Helper()
		r := runCLI(t, "", "--db", db, "status", "--json", "--to", url, "--schema", schema, "--source", "till-8")
		var info replicate.StatusInfo
		if err := json.Unmarshal([]byte(r.stdout), &info); r.code != 0 || err != nil {
			t.Fatalf("status: exit %d %q %v", r.code, r.stderr, err)
		}
		return info
	}
	if info := status(); info.LocalHead != 2 || info.LagEvents != 2 || info.StoreID != store.ID() {
		t.Fatalf("before replicating: %+v", info)
	}
	if err := replicate.Run(context.Background(), store, replicate.Options{URL: url, Schema: schema, Source: "till-8", Once: true}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	if info := status(); info.LocalHead != 3 || info.Replicated != 2 || info.LagEvents != 1 || info.LagSeconds <= 0 {
		t.Fatalf("after replicating 2 of 3: %+v", info)
	}
	runCLI(t, "", "--db", db, "status", "--to", url, "--schema", schema, "--source", "till-8").want(t, 0, []string{"local head  3", "replicated  2 (lag 1 events"}, nil)
}
