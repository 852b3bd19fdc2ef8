package repository

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
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
// The driver's own messages (a connection dropped, a packet out of order)
// go to logger as warnings; nil leaves them on the driver's default, stderr.
func Open(ctx context.Context, dsn string, maxOpenConns int, logger *slog.Logger) (*sqlx.DB, error) {
	db, err := NewPool(dsn, maxOpenConns, logger)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: ping %s: %w", describe(dsn), err)
	}
	return db, nil
}

// NewPool is Open without the ping: the pool connects when first used. A
// web server uses it to start while MySQL is down, report not-ready, and
// recover by itself when MySQL returns.
func NewPool(dsn string, maxOpenConns int, logger *slog.Logger) (*sqlx.DB, error) {
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
	if logger != nil {
		// This pool's, not mysql.SetLogger's process-wide one: two
		// services in one process keep their own logs.
		cfg.Logger = driverLogger{logger}
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s/%s: %w", cfg.Addr, cfg.DBName, err)
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "mysql")
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	return db, nil
}

// driverLogger adapts slog to the MySQL driver's logger.
type driverLogger struct{ logger *slog.Logger }

func (l driverLogger) Print(v ...any) { l.logger.Warn("mysql driver", "detail", fmt.Sprint(v...)) }

// describe names a DSN's server, database and user, never its password.
func describe(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return fmt.Sprintf("%s/%s as %q", cfg.Addr, cfg.DBName, cfg.User)
}
