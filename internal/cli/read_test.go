package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

func fmtSscan(s string, p *uint64) (int, error) { return fmt.Sscan(strings.Fields(s)[0], p) }

func equal(a, b []uint64) bool { return slices.Equal(a, b) }

func TestRead(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db,
		[2]string{"append", `{"stream":"s-1","type":"A","data":{"n":1}}`},
		[2]string{"append", `{"stream":"other","type":"X","data":0}`},
		[2]string{"append", `{"stream":"s-1","type":"B","data":"two"}`},
		[2]string{"append", `{"stream":"s-1","type":"C","data":[3]}`},
	)
	tests := []struct {
		name     string
		args     []string
		code     int
		versions []uint64
		stdout   []string
		stderr   []string
	}{
		{"all", []string{"s-1"}, 0, []uint64{1, 2, 3}, []string{"1  ", "  s-1  v1  A  {\"n\":1}", "3  ", "  s-1  v2  B  \"two\"", "4  ", "  s-1  v3  C  [3]"}, nil},
		{"from", []string{"--from", "2", "s-1"}, 0, []uint64{2, 3}, nil, nil},
		{"from past the end", []string{"--from", "9", "s-1"}, 0, nil, nil, []string{"evstore: stream s-1 has no events from version 9\n"}},
		{"missing stream", []string{"nope"}, 0, nil, nil, []string{"evstore: stream nope has no events\n"}},
		{"no stream argument", nil, 2, nil, nil, []string{"read: missing the STREAM"}},
		{"two streams", []string{"a", "b"}, 2, nil, nil, []string{"read: too many arguments"}},
		{"flag after stream", []string{"s-1", "--from", "2"}, 2, nil, nil, []string{"flag --from after the arguments: flags go first"}},
		{"empty stream id", []string{""}, 2, nil, nil, []string{"read: invalid stream: must not be empty"}},
		{"control character", []string{"a\tb"}, 2, nil, nil, []string{"control character"}},
		{"too long", []string{strings.Repeat("x", 300)}, 2, nil, nil, []string{"the limit is 255"}},
		{"stream starting with a dash", []string{"--", "-x"}, 0, nil, nil, []string{"stream -x has no events"}},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			name, args := tt.name, append([]string{"--db", db, "read"}, tt.args...)
			if asJSON {
				name, args = name+" json", append([]string{"--db", db, "read", "--json"}, tt.args...)
			}
			t.Run(name, func(t *testing.T) {
				r := runCLI(t, "", args...)
				if asJSON {
					r.want(t, tt.code, nil, tt.stderr)
				} else {
					r.want(t, tt.code, tt.stdout, tt.stderr)
				}
				if tt.code != 0 {
					return
				}
				var got []uint64
				for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					if !asJSON {
						if f := strings.Fields(l); len(f) > 3 && f[2] == "s-1" {
							var v uint64
							fmt.Sscanf(f[3], "v%d", &v)
							got = append(got, v)
						}
						continue
					}
					if l == "" {
						continue
					}
					var ev jsonEvent
					if err := json.Unmarshal([]byte(l), &ev); err != nil {
						t.Fatalf("line %q: %v", l, err)
					}
					got = append(got, ev.Version)
				}
				if !equal(got, tt.versions) {
					t.Errorf("versions %v, want %v\n%s", got, tt.versions, r.stdout)
				}
			})
		}
	}
	if head(t, db) != 4 {
		t.Error("read wrote")
	}
}

func TestReadMissingDB(t *testing.T) {
	db := tempDB(t)
	runCLI(t, "", "--db", db, "read", "s").want(t, 1, nil, []string{"database " + db + " does not exist: pass --db PATH"})
	noFile(t, db)
	// A bad stream id is reported before the database is looked at.
	runCLI(t, "", "--db", db, "read", "").want(t, 2, nil, []string{"invalid stream"})
}

func TestReadJSONFields(t *testing.T) {
	db := tempDB(t)
	store, err := local.Open(db, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.Append(context.Background(), []format.EventData{
		{Stream: "s", Type: "json", Data: []byte(`{"a": 1}`), Metadata: map[string]string{"correlation-id": "c-1"}},
		{Stream: "s", Type: "text", Data: []byte("plain text")},
		{Stream: "s", Type: "binary", Data: []byte{0xff, 0x00, 0x01}},
		{Stream: "s", Type: "empty"},
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "--db", db, "read", "--json", "s")
	r.want(t, 0, nil, nil)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := []string{
		`"data":{"a":1},"metadata":{"correlation-id":"c-1"}`,
		`"data":"plain text","data_encoding":"utf-8","metadata":{}`,
		`"data":"/wAB","data_encoding":"base64"`,
		`"data":null,"metadata":{}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines: %s", len(lines), r.stdout)
	}
	for i, l := range lines {
		if !strings.Contains(l, want[i]) {
			t.Errorf("line %d %s lacks %s", i, l, want[i])
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"position", "stream", "version", "type", "data", "metadata", "id", "time"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q", i, k)
			}
		}
	}
	r = runCLI(t, "", "--db", db, "read", "s")
	r.want(t, 0, []string{`json  {"a":1}  metadata={"correlation-id":"c-1"}`, `text  "plain text"`, "binary  (3 bytes of binary data)", "empty  (no data)"}, nil)
}

// An empty database file: TestEmptyFile in store_test.go.

func TestReadSkipDamaged(t *testing.T) {
	db := bankDB(t)
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error { // account-a v2, the deposit
		lb := tx.Bucket([]byte("log"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 3}
		v := append([]byte(nil), lb.Get(k)...)
		v[len(v)-2] ^= 0x20
		return lb.Put(k, v)
	})
	b.Close()
	runCLI(t, "", "--db", db, "read", "account-a").want(t, 1, nil, []string{"corrupt record at position 3", "read --skip-damaged"})
	r := runCLI(t, "", "--db", db, "read", "--skip-damaged", "account-a")
	r.want(t, 1, []string{"account-a  v1", "account-a  v3"}, []string{"read: damaged records skipped at positions 3"})
	runCLI(t, "", "--db", db, "read", "--skip-damaged", "account-b").want(t, 0, []string{"account-b  v2"}, nil)
}
