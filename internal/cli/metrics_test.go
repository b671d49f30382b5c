package cli

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evstore/evstore/internal/testutil"
)

// TestMetricsEndpointNeedsLoopbackOrToken: metrics bind the loopback
// interface for a bare port, refuse any other address without a token,
// and with a token answer only scrapers that send it.
func TestMetricsEndpointNeedsLoopbackOrToken(t *testing.T) {
	db := tempDB(t)
	mustExec(t, db, [2]string{"counter.increment", `{"counter":"c"}`})
	runCLI(t, "", "--db", db, "serve", "--metrics-addr", "0.0.0.0:0").want(t, 2, nil, []string{"not a loopback address", "--metrics-token-file"})

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- runDaemon(t, ctx, "--db", db, "serve", "--metrics-addr", addr, "--metrics-token-file", tokenFile)
	}()
	defer func() { cancel(); <-done }()
	get := func(token string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.WaitFor(t, 30*time.Second, "metrics served", func() bool { return get("0123456789abcdef0123") == 200 })
	if code := get(""); code != 401 {
		t.Errorf("no token: status %d, want 401", code)
	}
	if code := get("wrong-token-wrong-token"); code != 401 {
		t.Errorf("wrong token: status %d, want 401", code)
	}
}
