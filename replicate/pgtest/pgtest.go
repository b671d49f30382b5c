// Package pgtest gives tests a PostgreSQL schema of their own. Tests that
// need PostgreSQL read its URL from EVSTORE_TEST_POSTGRES and skip without
// it; each gets a schema with a random name, dropped when the test ends.
// There is no mock: the replication tests are only worth something against
// a real server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the variable holding the test server's URL.
const EnvVar = "EVSTORE_TEST_POSTGRES"

// URL returns the test server's URL or skips the test.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvVar)
	if u == "" {
		t.Skipf("PostgreSQL tests are off: set %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them", EnvVar)
	}
	return u
}

// Schema returns the server URL and a fresh schema name. The schema is not
// created (replicate creates it); it is dropped with everything in it when
// the test ends.
func Schema(t testing.TB) (url, schema string) {
	t.Helper()
	url = URL(t)
	var b [6]byte
	rand.Read(b[:])
	schema = "evstore_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return url, schema
}

// Conn opens a connection for the test's own queries, closed at cleanup.
func Conn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
