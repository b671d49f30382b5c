package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"path/filepath"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/replicate/pgtest"
)

// TestRestoreFromPostgres is acceptance 4: replicate, lose the file,
// restore it from PostgreSQL, go on writing and replicating: PostgreSQL
// holds one continuous history, the restored log reads as the lost one, and
// a key from before the loss is still a duplicate.
func TestRestoreFromPostgres(t *testing.T) {
	for _, layout := range []string{"rows", "frames"} {
		t.Run(layout, func(t *testing.T) {
			url, schema := pgtest.Schema(t)
			bin := binary(t)
			db := filepath.Join(t.TempDir(), "till.db")
			pg := []string{"--to", url, "--schema", schema, "--source", "till-1"}
			exec := func(key, cmd, args string) cliResult {
				a := []string{"--db", db, "exec", "--json"}
				if key != "" {
					a = append(a, "--key", key)
				}
				return runBin(t, bin, "", append(a, cmd, args)...)
			}
			exec("open-a", "bank.open", `{"account":"a","owner":"Ann <ann@example.com>"}`).must(t, 0)
			exec("open-b", "bank.open", `{"account":"b","owner":"Bob"}`).must(t, 0)
			exec("dep-1", "bank.deposit", `{"account":"a","amount":1000}`).must(t, 0)
			runBin(t, bin, "", append([]string{"--db", db, "replicate", "--once", "--layout", layout}, pg...)...).must(t, 0)
			exec("xfer-1", "bank.transfer", `{"from":"a","to":"b","amount":250}`).must(t, 0)
			exec("", "bank.withdraw", `{"account":"b","amount":50}`).must(t, 0)
			runBin(t, bin, "", append([]string{"--db", db, "replicate", "--once", "--layout", layout}, pg...)...).must(t, 0)
			lost := runBin(t, bin, "", "--db", db, "log", "--json")
			lost.must(t, 0)
			if err := os.Remove(db); err != nil {
				t.Fatal(err)
			}

			r := runBin(t, bin, "", "--db", db, "restore", "--from", url, "--schema", schema, "--source", "till-1")
			r.must(t, 0, "restored source till-1", "positions 1..6", "4 idempotency keys")
			restored := runBin(t, bin, "", "--db", db, "log", "--json")
			sameLog(t, layout, lost.stdout, restored.stdout)
			runBin(t, bin, "", "--db", db, "verify").must(t, 0, ": OK")
			// A second restore refuses to overwrite.
			runBin(t, bin, "", "--db", db, "restore", "--from", url, "--schema", schema, "--source", "till-1").must(t, 1, "exists")

			// The transfer retried after the loss is recognised.
			dup := exec("xfer-1", "bank.transfer", `{"from":"a","to":"b","amount":250}`)
			dup.must(t, 0, `"duplicate":true`, `"position":5`)
			exec("dep-2", "bank.deposit", `{"account":"b","amount":5}`).must(t, 0, `"position":7`)
			runBin(t, bin, "", append([]string{"--db", db, "replicate", "--once", "--layout", layout}, pg...)...).must(t, 0)

			conn := pgtest.Conn(t, url)
			ctx := t.Context()
			var sources, pos int64
			conn.QueryRow(ctx, "SELECT count(*), max(position) FROM "+ident(schema)+".sources").Scan(&sources, &pos)
			if sources != 1 || pos != 7 {
				t.Fatalf("%d sources, position %d: want one source at 7 (no archive)", sources, pos)
			}
			var n, lo, hi int64
			q := "SELECT count(*), min(position), max(position) FROM " + ident(schema) + ".events WHERE source = 'till-1'"
			if layout == "frames" {
				q = "SELECT coalesce(sum(event_count), 0), min(first_position), max(last_position) FROM " + ident(schema) + ".frames WHERE source = 'till-1'"
			}
			if err := conn.QueryRow(ctx, q).Scan(&n, &lo, &hi); err != nil {
				t.Fatal(err)
			}
			if n != 7 || lo != 1 || hi != 7 {
				t.Fatalf("PostgreSQL holds %d events, positions %d..%d: want 7, 1..7", n, lo, hi)
			}
		})
	}
}

// sameLog compares two `log --json` outputs: exactly for frames; for rows
// with times to the microsecond and payloads as JSON values.
func sameLog(t *testing.T, layout, want, got string) {
	t.Helper()
	if layout == "frames" {
		if want != got {
			t.Fatalf("restored log differs:\n%s\n%s", want, got)
		}
		return
	}
	wl, gl := strings.Split(strings.TrimSpace(want), "\n"), strings.Split(strings.TrimSpace(got), "\n")
	if len(wl) != len(gl) {
		t.Fatalf("%d events restored, want %d", len(gl), len(wl))
	}
	for i := range wl {
		var a, b format.Event
		if err := json.Unmarshal([]byte(wl[i]), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(gl[i]), &b); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(a.Data, b.Data) {
			t.Fatalf("event %d data %s, want %s", i+1, b.Data, a.Data)
		}
		a.Data, b.Data = nil, nil
		a.Time = a.Time.Truncate(time.Microsecond)
		aj, _ := json.Marshal(a)
		bj, _ := json.Marshal(b)
		if !bytes.Equal(aj, bj) {
			t.Fatalf("event %d:\n got %s\nwant %s", i+1, bj, aj)
		}
	}
}
