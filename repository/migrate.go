package repository

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLockName prefixes the MySQL named lock that serialises Migrate
// across replicas starting at once. Named locks are server-wide, so the lock
// name ends with the database name: databases on one server don't wait on
// each other.
const migrateLockName = "ll_migrate."

// migrateLockTimeout is how long Migrate waits for another replica's run.
const migrateLockTimeout = 60 * time.Second

// schemaVersion is the newest migration, the schema this build reads.
const schemaVersion = bookDetailVersion

// Migrate applies the embedded schema migrations that db has not seen yet.
// It is idempotent, and safe to run from several processes at once.
func Migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectMySQL, db, fsys,
		goose.WithSessionLocker(namedLock{name: migrateLockName, timeout: migrateLockTimeout}),
		goose.WithGoMigrations(bookDetailMigration()),
	)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// namedLock is a goose session locker built on MySQL's GET_LOCK, which
// MySQL, MariaDB and go-mysql-server all have.
type namedLock struct {
	name    string
	timeout time.Duration
}

func (l namedLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	const q = `SELECT GET_LOCK(CONCAT(?, DATABASE()), ?)`
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, q, l.name, int(l.timeout/time.Second)).Scan(&got); err != nil {
		return fmt.Errorf("take lock %s: %w", l.name, err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("take lock %s: another migration held it for %s", l.name, l.timeout)
	}
	return nil
}

func (l namedLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	const q = `SELECT RELEASE_LOCK(CONCAT(?, DATABASE()))`
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, q, l.name).Scan(&released); err != nil {
		return fmt.Errorf("release lock %s: %w", l.name, err)
	}
	if released.Int64 != 1 {
		return errors.New("release lock " + l.name + ": not held")
	}
	return nil
}
