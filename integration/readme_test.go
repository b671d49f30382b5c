package integration

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/evstore/evstore/local"
)

// buildCLI is the evstore binary.
func buildCLI(t *testing.T) string { return evstoreBin(t) }

// readmeCommands returns the "$ go run . ARGS" examples and the first
// command of the quick start, with the output the README shows for each.
func readmeExamples(t *testing.T) (quickStart []string, shown map[string]string) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	m := regexp.MustCompile("(?m)^go run \\. (exec -f \\S+)").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README quick start has no 'go run . exec -f FILE' command")
	}
	quickStart = strings.Fields(m[1])
	shown = map[string]string{}
	for _, block := range regexp.MustCompile("(?s)```\n\\$ go run \\. ([^\n]*)\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		shown[block[1]] = block[2]
	}
	return quickStart, shown
}

// TestReadmeQuickStart runs the README's quick start as a new user would,
// in an empty directory with the default database, and checks that what it
// prints is what the README shows (times aside).
func TestReadmeQuickStart(t *testing.T) {
	bin := buildCLI(t)
	quick, shown := readmeExamples(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "examples"), os.DirFS("../examples")); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "EVSTORE_DB=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), code
	}
	out, errOut, code := run(quick...)
	if code != 0 || !strings.Contains(out, "9 ok, 0 failed") {
		t.Fatalf("quick start exited %d:\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "evstore.db")); err != nil {
		t.Fatalf("the default database ./evstore.db was not created: %v", err)
	}
	if len(shown) < 2 {
		t.Fatalf("README shows %d '$ go run .' examples, want the read and the refused transfer", len(shown))
	}
	times := regexp.MustCompile(`\d{4}-\d\d-\d\dT[\d:.]+Z`)
	for cmdline, want := range shown {
		args := splitShell(t, cmdline)
		before := storeHead(t, filepath.Join(dir, "evstore.db"))
		stdout, stderr, code := run(args...)
		if after := storeHead(t, filepath.Join(dir, "evstore.db")); code != 0 && after != before {
			t.Errorf("%q failed but moved the head from %d to %d", cmdline, before, after)
		}
		got := times.ReplaceAllString(stdout+stderr, "TIME")
		if want = times.ReplaceAllString(want, "TIME"); got != want {
			t.Errorf("README shows for %q:\n%s\nbut it prints (exit %d):\n%s", cmdline, want, code, got)
		}
	}
	// Running the example again appends nothing: every line has a key.
	out, _, code = run(quick...)
	if code != 0 || strings.Count(out, "already used") != 9 {
		t.Fatalf("second run exited %d:\n%s", code, out)
	}
	if _, errOut, code := run("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command exited %d: %s", code, errOut)
	}
}

func storeHead(t *testing.T, path string) uint64 {
	t.Helper()
	s, err := local.Open(path, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Head()
}

// splitShell splits a README command line, honouring single quotes.
func splitShell(t *testing.T, s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`'([^']*)'|(\S+)`).FindAllStringSubmatch(s, -1) {
		if m[1] != "" {
			out = append(out, m[1])
		} else {
			out = append(out, m[2])
		}
	}
	if len(out) == 0 {
		t.Fatalf("empty command line %q", s)
	}
	return out
}
