package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// built holds the binaries the tests run, each linked once per test run
// (linking takes seconds; a short test would otherwise be mostly that),
// in one directory that TestMain removes.
var built struct {
	mu    sync.Mutex
	dir   string
	paths map[string]string // package → binary
}

// buildBin returns the binary of pkg, a package path relative to this
// directory ("..", the evstore CLI, or "./testdata/replicator"), building
// it on first use.
func buildBin(t testing.TB, pkg string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if p, ok := built.paths[pkg]; ok {
		return p
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "evstore-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.paths = dir, map[string]string{}
	}
	name := path.Base(pkg)
	if pkg == ".." {
		name = "evstore"
	}
	out := filepath.Join(built.dir, name)
	if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatal(fmt.Errorf("go build %s: %v\n%s", pkg, err, msg))
	}
	built.paths[pkg] = out
	return out
}

// evstoreBin is the evstore CLI.
func evstoreBin(t testing.TB) string { return buildBin(t, "..") }

func removeBuilt() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}
