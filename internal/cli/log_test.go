package cli

import (
	"encoding/json"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestLog(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db,
		[2]string{"bank.open", `{"account":"a","owner":"A"}`},
		[2]string{"bank.open", `{"account":"b","owner":"B"}`},
		[2]string{"bank.deposit", `{"account":"a","amount":700}`},
		[2]string{"bank.transfer", `{"from":"a","to":"b","amount":200}`},
	)
	tests := []struct {
		name      string
		args      []string
		code      int
		positions []uint64 // for exit 0
		stdout    []string
		stderr    []string
	}{
		{"all", nil, 0, []uint64{1, 2, 3, 4, 5}, []string{"1  ", "  account-a  v1  AccountOpened  {\"account\":\"a\",\"owner\":\"A\"}", "5  ", "account-b  v2  TransferReceived  {\"amount\":200,\"balance\":200,\"from\":\"a\"}"}, nil},
		{"from", []string{"--from", "4"}, 0, []uint64{4, 5}, nil, nil},
		{"from 0 is from 1", []string{"--from", "0"}, 0, []uint64{1, 2, 3, 4, 5}, nil, nil},
		{"limit", []string{"--limit", "2"}, 0, []uint64{1, 2}, nil, nil},
		{"from and limit", []string{"--from", "2", "--limit", "2"}, 0, []uint64{2, 3}, nil, nil},
		{"past the end", []string{"--from", "9"}, 0, nil, nil, []string{"evstore: no events from position 9 (the log ends at 5)\n"}},
		{"negative from", []string{"--from", "-1"}, 2, nil, nil, []string{"log:", "-from"}},
		{"argument", []string{"x"}, 2, nil, nil, []string{"log: too many arguments"}},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			name := tt.name
			args := append([]string{"--db", db, "log"}, tt.args...)
			if asJSON {
				name += " json"
				args = append([]string{"--db", db, "log", "--json"}, tt.args...)
			}
			t.Run(name, func(t *testing.T) {
				r := runCLI(t, "", args...)
				if !asJSON {
					r.want(t, tt.code, tt.stdout, tt.stderr)
				} else {
					r.want(t, tt.code, nil, tt.stderr)
				}
				if tt.code != 0 {
					return
				}
				var got []uint64
				for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
					if l == "" {
						continue
					}
					if asJSON {
						var ev jsonEvent
						if err := json.Unmarshal([]byte(l), &ev); err != nil {
							t.Fatalf("line %q: %v", l, err)
						}
						got = append(got, ev.Position)
						continue
					}
					var p uint64
					if _, err := fmtSscan(l, &p); err == nil {
						got = append(got, p)
					}
				}
				if !equal(got, tt.positions) {
					t.Errorf("positions %v, want %v\n%s", got, tt.positions, r.stdout)
				}
			})
		}
	}
	if head(t, db) != 5 {
		t.Error("log wrote")
	}
}

func TestLogMissingDB(t *testing.T) {
	db := tempDB(t)
	runCLI(t, "", "--db", db, "log").want(t, 1, nil, []string{"database " + db + " does not exist", "evstore exec"})
	noFile(t, db)
}

func TestLogSkipDamaged(t *testing.T) {
	db := bankDB(t)
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket([]byte("log"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 2}
		v := append([]byte(nil), lb.Get(k)...)
		v[len(v)-2] ^= 0x20
		return lb.Put(k, v)
	})
	b.Close()
	runCLI(t, "", "--db", db, "log").want(t, 1, nil, []string{"corrupt record at position 2", "--skip-damaged"})
	r := runCLI(t, "", "--db", db, "log", "--skip-damaged")
	r.want(t, 1, []string{"1  ", "3  ", "5  "}, []string{"damaged records skipped at positions 2"})
	if strings.Contains(r.stdout, "account-b  v1") {
		t.Errorf("the damaged record was printed: %s", r.stdout)
	}
}
