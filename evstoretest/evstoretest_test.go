package evstoretest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evstore/evstore/evstoretest"
	"github.com/evstore/evstore/format"
)

// tally is a command on one stream: its state is the events' data joined,
// and it appends one "Tallied" event holding that, or fails on "boom".
type tally struct{ stream string }

func (c tally) Streams() []string { return []string{c.stream} }
func (c tally) Apply(s *[]string, ev format.Event) {
	*s = append(*s, string(ev.Data)+"@"+ev.Time.Format(time.TimeOnly))
}
func (c tally) Handle(_ context.Context, s []string) ([]format.EventData, error) {
	for _, x := range s {
		if strings.HasPrefix(x, `"boom"`) {
			return nil, errBoom
		}
	}
	return []format.EventData{{Stream: c.stream, Type: "Tallied", Data: fmt.Appendf(nil, "%q", strings.Join(s, ","))}}, nil
}

var errBoom = errors.New("boom")

func TestGivenWhenThen(t *testing.T) {
	evstoretest.When(evstoretest.Given(t, evstoretest.Event("t-1", "N", `1`), evstoretest.Event("other", "N", `9`)), tally{"t-1"}).
		Then(evstoretest.Event("t-1", "Tallied", `"1@09:00:00"`))

	sc := evstoretest.Given(t, evstoretest.Event("t-1", "N", `1`))
	sc.At(evstoretest.Epoch().Add(time.Hour)).Given(evstoretest.Event("t-1", "N", `2`))
	out := evstoretest.When(sc, tally{"t-1"}).Then(evstoretest.Event("t-1", "Tallied", `"1@09:00:00,2@10:00:00"`))
	if ev := out.Result.Events[0]; !ev.Time.Equal(evstoretest.Epoch().Add(time.Hour)) || ev.Position != 3 {
		t.Errorf("appended %+v", ev)
	}

	evstoretest.When(evstoretest.Given(t, evstoretest.Event("t-1", "N", `"boom"`)), tally{"t-1"}).ThenError(errBoom)
	evstoretest.When(evstoretest.Given(t, evstoretest.Event("t-1", "N", `"boom"`)), tally{"t-1"}).ThenErrorContains("boom")
}

func TestFold(t *testing.T) {
	got := evstoretest.Fold(tally{"t-1"}, evstoretest.Event("t-1", "N", `1`), evstoretest.Event("x", "N", `2`), evstoretest.Event("t-1", "N", `3`))
	if strings.Join(got, ",") != "1@09:00:00,3@09:00:00" {
		t.Errorf("Fold = %v", got)
	}
}

// fakeT records a failure instead of failing the real test.
type fakeT struct {
	*testing.T
	mu     sync.Mutex
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// mustFail runs fn with a fake T and returns the failure message.
func mustFail(t *testing.T, fn func(tb testing.TB)) string {
	t.Helper()
	f := &fakeT{T: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	if f.failed == "" {
		t.Fatal("the check passed, want it to fail")
	}
	return f.failed
}

func TestChecksFail(t *testing.T) {
	for _, tt := range []struct {
		name string
		fn   func(tb testing.TB)
		want string
	}{
		{"other data", func(tb testing.TB) {
			evstoretest.When(evstoretest.Given(tb, evstoretest.Event("t-1", "N", `1`)), tally{"t-1"}).Then(evstoretest.Event("t-1", "Tallied", `"2"`))
		}, "got events:\n  t-1 Tallied"},
		{"fewer events", func(tb testing.TB) {
			evstoretest.When(evstoretest.New(tb), tally{"t-1"}).Then()
		}, "want events:\n  (none)"},
		{"error expected", func(tb testing.TB) {
			evstoretest.When(evstoretest.New(tb), tally{"t-1"}).ThenError(errBoom)
		}, "succeeded, want an error"},
		{"success expected", func(tb testing.TB) {
			evstoretest.When(evstoretest.Given(tb, evstoretest.Event("t-1", "N", `"boom"`)), tally{"t-1"}).Then()
		}, "failed with boom"},
		{"other error", func(tb testing.TB) {
			evstoretest.When(evstoretest.Given(tb, evstoretest.Event("t-1", "N", `"boom"`)), tally{"t-1"}).ThenError(os.ErrNotExist)
		}, "want an error matching"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if msg := mustFail(t, tt.fn); !strings.Contains(msg, tt.want) {
				t.Errorf("message %q lacks %q", msg, tt.want)
			}
		})
	}
}

// TestReadmeShowsExample keeps the README's test kit example the same as
// example_test.go, which this package's tests run.
func TestReadmeShowsExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "// README: the test kit example starts here.\n")
	end := strings.Index(s, "// README: the test kit example ends here.")
	if start < 0 || end < start {
		t.Fatal("example_test.go lacks its README markers")
	}
	example := strings.TrimSpace(s[start+len("// README: the test kit example starts here.\n") : end])
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), example) {
		t.Errorf("README.md does not show example_test.go's test as it is:\n%s", example)
	}
	if n := strings.Count(example, "\n") + 1; n > 12 {
		t.Errorf("the example is %d lines; keep it short", n)
	}
}
