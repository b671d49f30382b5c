package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/evstore/evstore/local"
)

func TestStreams(t *testing.T) {
	db := bankDB(t)
	r := runCLI(t, "", "--db", db, "streams")
	r.want(t, 0, []string{"account-a  v3  last at position 4", "account-b  v2  last at position 5"}, nil)
	if n := strings.Count(r.stdout, "\n"); n != 2 {
		t.Errorf("%d lines: %q", n, r.stdout)
	}
	r = runCLI(t, "", "--db", db, "streams", "--prefix", "account-", "--limit", "1", "--json")
	var si local.StreamInfo
	if err := json.Unmarshal([]byte(r.stdout), &si); err != nil || si.Stream != "account-a" || si.Version != 3 {
		t.Fatalf("json %q: %v", r.stdout, err)
	}
	runCLI(t, "", "--db", db, "streams", "--prefix", "zzz").want(t, 0, []string{`no streams start with "zzz"`}, nil)
}

// TestStreamsThroughOwner: the same output and exit codes whether streams
// opens the file or asks the process holding it.
func TestStreamsThroughOwner(t *testing.T) {
	db := bankDB(t)
	steps := [][]string{
		{"streams"},
		{"streams", "--json"},
		{"streams", "--prefix", "account-b"},
		{"streams", "--prefix", "account-", "--limit", "1"},
		{"streams", "--json", "--limit", "5"},
		{"streams", "--prefix", "zzz"},
		{"streams", "--prefix", "zzz", "--json"},
		{"streams", "--prefix", "a&b=c\x01"},
		{"streams", "extra"},
	}
	var plain []result
	for _, args := range steps {
		plain = append(plain, runCLI(t, "", append([]string{"--db", db}, args...)...))
	}
	ownDB(t, db)
	for i, args := range steps {
		owned := runCLI(t, "", append([]string{"--db", db}, args...)...)
		if owned != plain[i] {
			t.Errorf("%v differs:\nfile:  %d %q %q\nowner: %d %q %q", args, plain[i].code, plain[i].stdout, plain[i].stderr, owned.code, owned.stdout, owned.stderr)
		}
	}
}
