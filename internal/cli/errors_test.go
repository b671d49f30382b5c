package cli

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/evstore/evstore/local"
	"github.com/evstore/evstore/replicate"
)

// TestLibrariesNameNoFlags keeps flag names out of the libraries' errors and
// hints: a Go program embedding them has no flags to pass.
func TestLibrariesNameNoFlags(t *testing.T) {
	flag := regexp.MustCompile(`(^|[\s(])--[a-z][a-z-]+`)
	for _, pkg := range []string{"format", "local", "executor", "commands", "replicate", "server", "projection", "evstoretest"} {
		dir := filepath.Join("..", "..", pkg)
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			file, err := parser.ParseFile(token.NewFileSet(), f, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				if s, err := strconv.Unquote(lit.Value); err == nil && flag.MatchString(s) {
					t.Errorf("%s: string %q names a CLI flag; name the Options field instead", f, s)
				}
				return true
			})
		}
	}
}

func TestErrorsInFlagWords(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&replicate.Error{Kind: replicate.ErrDiverged, Source: "s", Hint: "set Options.NewSource to archive the old rows, or use another Options.Source"},
			"run with --new-source to archive the old rows, or use another --source"},
		{&replicate.Error{Kind: replicate.ErrLayoutMismatch, Hint: "set Options.Layout to frames, or replicate under another Options.Source"},
			"pass --layout frames, or replicate under another --source"},
		{&local.OpenError{Path: "x.db", Err: local.ErrLocked, Hint: "close the other process that has it open, or open another path"},
			"pass another --db"},
		{&replicate.Error{Kind: replicate.ErrSourceActive, Source: "s", Detail: "store x advanced it 5s ago (through position 3), within Options.ActiveWindow (1h0m0s), and store id mismatch",
			Hint: "if two devices share this source name (a cloned image?), give each its own Options.Source; if the other log is gone for good, set Options.TakeOver to archive the source anyway"},
			"within the active window (1h0m0s), and store id mismatch; if two devices share this source name (a cloned image?), give each its own --source; if the other log is gone for good, run with --take-over to archive"},
		{fmt.Errorf("%w for source %q: nothing succeeded for 2m0s (Options.RetryFor); last error: refused", replicate.ErrGaveUp, "s"),
			"nothing succeeded for 2m0s (--retry-for)"},
		{&replicate.Error{Kind: replicate.ErrNoSource, Source: "s", Hint: "check RestoreOptions.Source and RestoreOptions.Schema"},
			"check --source and --schema"},
		{fmt.Errorf("x.db: %w: set BackupOptions.Overwrite to replace it", local.ErrExists), "pass --force to replace it"},
		{errors.New("plain"), "plain"},
	}
	for _, tt := range tests {
		_, msg := describeError(context.Background(), tt.err)
		if !strings.Contains(msg, tt.want) || strings.Contains(msg, "Options.") {
			t.Errorf("%v: got %q, want it to contain %q and no Options field", tt.err, msg, tt.want)
		}
	}
}
