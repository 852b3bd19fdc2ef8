package repository

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// connMaxLifetime recycles connections well before a server or proxy idle
// timeout would cut them, and lets a pool follow a failover.
const connMaxLifetime = 3 * time.Minute

// Open connects to the MySQL or MariaDB server named by dsn (go-sql-driver
// form, e.g. "user:pass@tcp(host:3306)/db") and checks it answers within ctx.
// Whatever the DSN says, dates are parsed into time.Time (parseTime=true) and
// the connection speaks utf8mb4; placeholders are interpolated client-side
// (one round trip per query) unless the DSN sets interpolateParams itself.
func Open(ctx context.Context, dsn string, maxOpenConns int) (*sqlx.DB, error) {
	if maxOpenConns < 1 {
		return nil, fmt.Errorf("open database: maxOpenConns is %d, want at least 1", maxOpenConns)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message never repeats the DSN, so no password leaks.
		return nil, fmt.Errorf("open database: parse DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("open database: the DSN names no database (want user@tcp(host:port)/dbname)")
	}
	cfg.ParseTime = true
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")); err != nil {
		return nil, fmt.Errorf("open database: set charset: %w", err)
	}
	if !strings.Contains(dsn, "interpolateParams=") {
		cfg.InterpolateParams = true
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s/%s: %w", cfg.Addr, cfg.DBName, err)
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "mysql")
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: ping %s/%s as %q: %w", cfg.Addr, cfg.DBName, cfg.User, err)
	}
	return db, nil
}
