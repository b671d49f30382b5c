package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	binenc "encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/evstore/evstore/format"
	"github.com/evstore/evstore/local"
)

func binary(t *testing.T) string { return evstoreBin(t) }

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

func runBin(t *testing.T, bin, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{out.String(), errb.String(), code}
}

func (r cliResult) must(t *testing.T, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range contains {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("output lacks %q\nstdout %s\nstderr %s", s, r.stdout, r.stderr)
		}
	}
}

// bankFile builds a database through the binary.
func bankFile(t *testing.T, bin string) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "bank.db")
	for _, c := range [][2]string{
		{"bank.open", `{"account":"a","owner":"Ann"}`},
		{"bank.open", `{"account":"b","owner":"Bob"}`},
		{"bank.deposit", `{"account":"a","amount":700}`},
		{"bank.transfer", `{"from":"a","to":"b","amount":200}`},
		{"bank.withdraw", `{"account":"b","amount":50}`},
	} {
		runBin(t, bin, "", "--db", db, "exec", c[0], c[1]).must(t, 0)
	}
	return db
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestBackupUnderLoad is acceptance 1: 20 backups taken while 64 clients
// append all verify clean (with the binary's verify) and hold every event
// acknowledged before the backup started.
func TestBackupUnderLoad(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	s, err := local.Open(filepath.Join(dir, "live.db"), local.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	// Writers take tokens, a batch released as each backup starts: they
	// write during the backups, and the file stays small enough for the
	// test to take seconds.
	tokens := make(chan struct{}, 1024)
	var (
		mu    sync.Mutex
		acked atomic.Uint64 // all positions up to this one are acknowledged
		done  = map[uint64]bool{}
		wg    sync.WaitGroup
	)
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-tokens:
				case <-ctx.Done():
					return
				}
				last, err := s.Append(ctx, []format.EventData{{Stream: fmt.Sprintf("client-%d", w), Type: "Sold", Data: fmt.Appendf(nil, `{"n":%d}`, i)}})
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				done[last] = true
				for done[acked.Load()+1] {
					delete(done, acked.Load()+1)
					acked.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	for i := range 20 {
		for range 256 {
			tokens <- struct{}{}
		}
		before := acked.Load()
		path := filepath.Join(dir, fmt.Sprintf("backup-%02d.db", i))
		if _, err := s.BackupFile(context.Background(), path, local.BackupOptions{}); err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		r := runBin(t, bin, "", "--db", path, "verify", "--json")
		r.must(t, 0, `"ok":true`)
		var head uint64
		fmt.Sscanf(r.stdout[strings.Index(r.stdout, `"head":`)+len(`"head":`):], "%d", &head)
		if head < before {
			t.Fatalf("backup %d holds %d events; %d were acknowledged before it started", i, head, before)
		}
	}
	cancel()
	wg.Wait()
}

// TestVerifyFindsDamage is acceptance 2: each kind of damage is found with
// its location; a healthy file passes.
func TestVerifyFindsDamage(t *testing.T) {
	bin := binary(t)
	healthy := bankFile(t, bin)
	runBin(t, bin, "", "--db", healthy, "verify").must(t, 0, "6 events", ": OK")
	key := func(pos uint64) []byte { return binenc.BigEndian.AppendUint64(nil, pos) }
	for _, tt := range []struct {
		name string
		fn   func(tx *bolt.Tx) error
		want string
	}{
		{"flipped byte in a record", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("log"))
			v := bytes.Clone(b.Get(key(4)))
			v[len(v)-4] ^= 0x01
			return b.Put(key(4), v)
		}, "log position 4: damaged record: checksum mismatch"},
		{"missing index entry", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("streams")).Delete(append([]byte("account-b\x00"), key(2)...))
		}, `index "account-b" version 2 position 5: no index entry for this event`},
		{"wrong versions entry", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("versions")).Put([]byte("account-a"), append(key(7), key(4)...))
		}, `versions "account-a": says version 7 at position 4, the index ends at version 3, position 4`},
		{"gap in positions", func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("log")).Delete(key(3))
		}, "log position 3: missing (a gap in positions)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "damaged.db")
			copyFile(t, healthy, db)
			b, err := bolt.Open(db, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Update(tt.fn); err != nil {
				t.Fatal(err)
			}
			b.Close()
			r := runBin(t, bin, "", "--db", db, "verify")
			r.must(t, 1, tt.want)
			if !strings.HasPrefix(r.stderr, "evstore: verify: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
}

// TestExportImportThroughBinary is acceptance 3.
func TestExportImportThroughBinary(t *testing.T) {
	bin := binary(t)
	db := bankFile(t, bin)
	dir := t.TempDir()
	file := filepath.Join(dir, "bank.evx")
	runBin(t, bin, "", "--db", db, "export", file).must(t, 0, "exported positions 1..6")
	restored := filepath.Join(dir, "restored.db")
	runBin(t, bin, "", "--db", restored, "import", file).must(t, 0, "imported 6 events")
	want := runBin(t, bin, "", "--db", db, "log", "--json")
	got := runBin(t, bin, "", "--db", restored, "log", "--json")
	if want.stdout != got.stdout || want.code != 0 {
		t.Fatalf("log --json differs after export and import:\n%s\n%s", want.stdout, got.stdout)
	}
	// Through a pipe as well.
	piped := runBin(t, bin, "", "--db", db, "export", "-")
	runBin(t, bin, piped.stdout, "--db", filepath.Join(dir, "piped.db"), "import", "-").must(t, 0, "imported 6 events")

	raw, _ := os.ReadFile(file)
	for _, off := range []int{10, format.ExportHeaderSize + format.FrameHeaderSize + 5, len(raw) - 8} {
		bad := bytes.Clone(raw)
		bad[off] ^= 0x10
		path := filepath.Join(dir, fmt.Sprintf("bad-%d.evx", off))
		os.WriteFile(path, bad, 0o600)
		into := filepath.Join(dir, fmt.Sprintf("bad-%d.db", off))
		r := runBin(t, bin, "", "--db", into, "import", path)
		r.must(t, 1, "nothing was imported")
		if !strings.Contains(r.stderr, "header") && !strings.Contains(r.stderr, "frame 1") && !strings.Contains(r.stderr, "trailer") {
			t.Errorf("flip at %d: no location in %q", off, r.stderr)
		}
		if _, err := os.Stat(into); err == nil {
			t.Errorf("flip at %d: a database was left behind", off)
		}
	}
}

// TestReadersLeaveTheFileAlone is acceptance 5: the reading commands work
// on a read-only file and leave its bytes unchanged.
func TestReadersLeaveTheFileAlone(t *testing.T) {
	bin := binary(t)
	db := bankFile(t, bin)
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, db)
	for _, args := range [][]string{
		{"log"}, {"log", "--json"}, {"read", "account-a"}, {"status"}, {"status", "--json"},
		{"stats"}, {"stats", "--json"}, {"streams"}, {"streams", "--json"}, {"verify"}, {"verify", "--json"},
	} {
		r := runBin(t, bin, "", append([]string{"--db", db}, args...)...)
		r.must(t, 0)
		if fileHash(t, db) != before {
			t.Fatalf("%v changed the file", args)
		}
	}
	st, err := os.Stat(db)
	if err != nil || st.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
}
