// Package repotest gives tests a migrated, empty catalog database: on the
// embedded go-mysql-server engine (no services needed) and, when
// LOCALLIBRARY_TEST_MYSQL_DSN (testkit.EnvMySQLDSN) names a server, on
// MySQL/MariaDB in a fresh database of its own that is dropped afterwards.
//
//	for _, b := range repotest.Backends() {
//		t.Run(b.Name, func(t *testing.T) {
//			db := b.Open(t) // skips if the backend is not configured
//			...
//		})
//	}
//
// LOCALLIBRARY_TEST_REQUIRE_SERVICES=1 turns those skips into failures.
package repotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/internal/testkit"
	"github.com/locallibrary/locallibrary/repository"
)

// setupTimeout bounds starting, creating and migrating a test database.
const setupTimeout = time.Minute

// Backend is a kind of database the catalog runs on.
type Backend struct {
	Name string // "embedded" or "mariadb"
	open func(t testing.TB) *sqlx.DB
}

// Open returns a fresh, migrated, empty database on the backend, closed and
// removed when the test ends. It skips the test if the backend is not
// available (fails under LOCALLIBRARY_TEST_REQUIRE_SERVICES=1).
func (b Backend) Open(t testing.TB) *sqlx.DB {
	t.Helper()
	return b.open(t)
}

// MariaDB is the MariaDB backend: for what only MySQL and MariaDB do.
var MariaDB = Backend{Name: "mariadb", open: MustMariaDB}

// Backends lists the backends the repository is tested on.
func Backends() []Backend {
	return []Backend{
		{Name: "embedded", open: MustEmbedded},
		MariaDB,
	}
}

// MustOpen returns a fresh migrated database: on the MySQL/MariaDB server of
// LOCALLIBRARY_TEST_MYSQL_DSN if it is set, else on the embedded engine
// (testkit.Optional: under LOCALLIBRARY_TEST_REQUIRE_SERVICES=1 it must be set).
func MustOpen(t testing.TB) *sqlx.DB {
	t.Helper()
	if testkit.Optional(t, testkit.EnvMySQLDSN) != "" {
		return MustMariaDB(t)
	}
	return MustEmbedded(t)
}

// MustMariaDB returns a fresh migrated database on the server named by
// LOCALLIBRARY_TEST_MYSQL_DSN, dropped when the test ends.
func MustMariaDB(t testing.TB) *sqlx.DB {
	t.Helper()
	dsn := testkit.Require(t, testkit.EnvMySQLDSN)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	admin, err := repository.Open(ctx, dsn, 1, nil)
	if err != nil {
		testkit.Unavailable(t, "MariaDB at %s does not answer (start it, or set %s to one that does): %v", testkit.EnvMySQLDSN, testkit.EnvMySQLDSN, err)
	}
	t.Cleanup(func() { admin.Close() })

	// latin1, many servers' default, so that a table that does not name
	// its own character set fails on the fixtures' non-Latin text.
	name := "ll_test_" + randomHex(t, 6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET latin1"); err != nil {
		t.Fatalf("create test database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE "+name); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})

	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", testkit.EnvMySQLDSN, err)
	}
	cfg.DBName = name
	return openMigrated(t, ctx, cfg.FormatDSN())
}

// openMigrated opens dsn, closes it when the test ends, and migrates it.
func openMigrated(t testing.TB, ctx context.Context, dsn string) *sqlx.DB {
	t.Helper()
	db, err := repository.Open(ctx, dsn, 4, nil)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := repository.Migrate(ctx, db.DB); err != nil {
		t.Fatalf("migrate test database: %v", err)
	}
	return db
}

// MustSeed seeds db and fails the test if that fails.
func MustSeed(t testing.TB, db *sqlx.DB, opt repository.SeedOptions) repository.SeedResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	res, err := repository.Seed(ctx, db, opt)
	if err != nil {
		t.Fatalf("seed %+v: %v", opt, err)
	}
	return res
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random database name: %v", err)
	}
	return hex.EncodeToString(b)
}
