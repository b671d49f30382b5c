package cli

import (
	"encoding/json"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestVerify(t *testing.T) {
	db := bankDB(t)
	runCLI(t, "", "--db", db, "verify").want(t, 0, []string{"5 events, 2 streams", "OK"}, nil)
	r := runCLI(t, "", "--db", db, "verify", "--json")
	var rep struct {
		OK       bool
		Events   uint64
		Problems []any
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.OK || rep.Events != 5 || rep.Problems == nil {
		t.Fatalf("json %q: %v", r.stdout, err)
	}

	// Flip a byte of the record at position 3.
	b, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket([]byte("log"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 3}
		v := append([]byte(nil), lb.Get(k)...)
		v[len(v)-2] ^= 0x20
		return lb.Put(k, v)
	})
	b.Close()
	r = runCLI(t, "", "--db", db, "verify")
	r.want(t, 1, []string{"log position 3: damaged record: checksum mismatch", "1 problem"}, []string{"verify: 1 problem", "log position 3"})
	r = runCLI(t, "", "--db", db, "verify", "--json")
	if r.code != 1 || !json.Valid([]byte(r.stdout)) {
		t.Fatalf("json of a damaged file: %d %q", r.code, r.stdout)
	}
	runCLI(t, "", "--db", db, "verify", "x").want(t, 2, nil, []string{"verify: too many arguments"})
}
