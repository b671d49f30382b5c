package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// needCurl skips when curl is missing (CI installs it): these tests use a
// client nobody here wrote.
func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: apt-get install curl to run the API examples")
	}
}

var (
	docTimes = regexp.MustCompile(`\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)`)
	docUUIDs = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	// How bbolt lays out pages depends on the machine's page size and on how
	// commits group, not on what the API promises.
	docSizes = regexp.MustCompile(`"(file_bytes|page_size|free_pages)":\d+`)
)

func normalizeDoc(s string) string {
	s = docSizes.ReplaceAllString(s, `"$1":N`)
	return docUUIDs.ReplaceAllString(docTimes.ReplaceAllString(s, "TIME"), "UUID")
}

// TestAPIDocExamples runs every "$ curl" example of docs/api.md, in order,
// against evstore serve on ./evstore.db, and checks that each prints what
// the document shows (times and ids aside).
func TestAPIDocExamples(t *testing.T) {
	needCurl(t)
	bin := buildCLI(t)
	doc, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := regexp.MustCompile("(?s)```\n\\$ (curl [^\n]*)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(examples) < 8 {
		t.Fatalf("docs/api.md has %d '$ curl' examples, want the whole tour", len(examples))
	}
	dir := t.TempDir()
	own := startOwner(t, filepath.Join(dir, "evstore.db"), "sh", "-c", "cd '"+dir+"' && exec '"+bin+"' serve")
	for _, ex := range examples {
		cmd := exec.Command("sh", "-c", ex[1])
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", ex[1], err, out)
			continue
		}
		if got, want := normalizeDoc(string(out)), normalizeDoc(ex[2]); got != want {
			t.Errorf("docs/api.md shows for\n  %s\n%s\nbut it prints\n%s", ex[1], want, got)
		}
	}
	own.stop(t)
}

// sseReader reads a Server-Sent Events stream from curl's output.
type sseReader struct{ r *bufio.Reader }

// next returns the next event's id and position, or ok false when the
// stream ends.
func (s sseReader) next(t *testing.T) (id string, pos uint64, ok bool) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return "", 0, false
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			var ev struct{ Position uint64 }
			if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
				t.Fatalf("data line %q: %v", line, err)
			}
			return id, ev.Position, true
		}
	}
}

// TestCurlConflictAndSubscribeAcrossRestart is acceptance item 4: curl
// appends with an expectation, gets a 409 with the actual version on a
// conflict, reads back, and follows subscribe across a restart of the
// server (with events appended while it was down) without missing or
// repeating one.
func TestCurlConflictAndSubscribeAcrossRestart(t *testing.T) {
	needCurl(t)
	bin := buildCLI(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	sock := db + ".sock"
	curl := func(args ...string) (string, error) {
		out, err := exec.Command("curl", append([]string{"-s", "--unix-socket", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	own := startOwner(t, db, bin, "--db", db, "serve")
	appendBody := `{"events":[{"stream":"order-1","type":"Placed","data":{"n":1}}],"expect":[{"stream":"order-1","version":0}]}`
	if out, err := curl("-f", "http://evstore/v1/append", "-d", appendBody); err != nil || !strings.Contains(out, `"position":1`) {
		t.Fatalf("append: %v %s", err, out)
	}
	out, err := curl("-w", "\nHTTP %{http_code}", "http://evstore/v1/append", "-d", appendBody)
	if err != nil || !strings.Contains(out, `"code":"conflict"`) || !strings.Contains(out, `"actual":1`) || !strings.HasSuffix(out, "HTTP 409") {
		t.Fatalf("conflict: %v %s", err, out)
	}
	if out, err := curl("-f", "http://evstore/v1/streams/order-1"); err != nil || !strings.Contains(out, `"type":"Placed"`) || strings.Count(out, `"stream":"order-1"`) != 1 {
		t.Fatalf("read back: %v %s", err, out)
	}

	// subscribe runs curl on the SSE stream; its events arrive on the
	// channel, which closes when the stream ends.
	type sseEvent struct {
		id  string
		pos uint64
	}
	subscribe := func(lastID string) (<-chan sseEvent, *exec.Cmd) {
		args := []string{"-sN", "--unix-socket", sock, "http://evstore/v1/subscribe?from=1"}
		if lastID != "" {
			args = append(args, "-H", "Last-Event-ID: "+lastID)
		}
		cmd := exec.Command("curl", args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch := make(chan sseEvent, 100)
		go func() {
			defer close(ch)
			r := sseReader{bufio.NewReader(stdout)}
			for {
				id, pos, ok := r.next(t)
				if !ok {
					io.Copy(io.Discard, stdout)
					return
				}
				ch <- sseEvent{id, pos}
			}
		}()
		return ch, cmd
	}
	exec1 := func(i int) {
		t.Helper()
		if out, errOut, code := cliRun(t, bin, "--db", db, "exec", "append", fmt.Sprintf(`{"stream":"order-2","type":"Step","data":{"i":%d}}`, i)); code != 0 {
			t.Fatalf("exec: %s%s", out, errOut)
		}
	}
	var got []uint64
	last := ""
	take := func(ch <-chan sseEvent, n int) {
		t.Helper()
		for range n {
			select {
			case ev, ok := <-ch:
				if !ok {
					t.Fatalf("stream ended after %v", got)
				}
				if ev.id != fmt.Sprint(ev.pos) {
					t.Fatalf("event id %q for position %d", ev.id, ev.pos)
				}
				got, last = append(got, ev.pos), ev.id
			case <-time.After(time.Minute): // deadlock guard
				t.Fatalf("no event after %v", got)
			}
		}
	}
	drain := func(ch <-chan sseEvent, cmd *exec.Cmd) {
		t.Helper()
		for ev := range ch {
			got, last = append(got, ev.pos), ev.id
		}
		cmd.Wait()
	}

	// Catch up on position 1, see 2..4 live, then the server stops.
	ch, cmd := subscribe("")
	take(ch, 1)
	for i := range 3 {
		exec1(i)
	}
	take(ch, 3)
	own.stop(t)
	drain(ch, cmd)
	// While no one serves, the CLI writes the file itself: 5..7.
	for i := 3; i < 6; i++ {
		exec1(i)
	}
	// Restarted, the subscriber resumes after the last id it saw.
	own = startOwner(t, db, bin, "--db", db, "serve")
	ch, cmd = subscribe(last)
	take(ch, 3)
	for i := 6; i < 8; i++ {
		exec1(i)
	}
	take(ch, 2)
	own.stop(t)
	drain(ch, cmd)
	want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("subscribe delivered %v, want %v", got, want)
	}
}
