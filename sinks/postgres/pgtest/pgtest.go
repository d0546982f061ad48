// Package pgtest gives tests a real PostgreSQL: the server in
// SKUWATCH_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test),
// a schema of their own that is dropped after them. Without a server a test
// is skipped, except under CI (CI set), where it fails: CI makes sure one
// runs.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSN is the administrator's connection string of the test server.
func DSN() string {
	if d := os.Getenv("SKUWATCH_TEST_POSTGRES"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Connect returns an administrator connection, closed after the test.
func Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, DSN())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is needed and not reachable at %s: %v", DSN(), err)
		}
		t.Skipf("no PostgreSQL at %s (set SKUWATCH_TEST_POSTGRES; under CI this fails): %v", DSN(), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// Schema names a fresh schema for the test and drops it (and its reader
// role, and the roles in extraRoles) afterwards.
func Schema(t testing.TB, extraRoles ...string) string {
	t.Helper()
	admin := Connect(t)
	b := make([]byte, 4)
	rand.Read(b)
	s := "t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		admin.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE")
		for _, r := range append(extraRoles, s+"_reader") {
			id := pgx.Identifier{r}.Sanitize()
			if _, err := admin.Exec(ctx, "DROP OWNED BY "+id); err == nil {
				admin.Exec(ctx, "DROP ROLE IF EXISTS "+id)
			}
		}
	})
	return s
}

// As is DSN() with another user.
func As(t testing.TB, user string) string {
	t.Helper()
	u, err := url.Parse(DSN())
	if err != nil || u.Scheme == "" {
		t.Fatalf("SKUWATCH_TEST_POSTGRES must be a postgres:// URL for this test: %q", DSN())
	}
	u.User = url.User(user)
	return u.String()
}
