package testkit

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"

	"github.com/go-sql-driver/mysql"
)

// MySQL is a MariaDB or MySQL server on this machine, reached as a user
// who may create and drop the databases the tools make for themselves.
type MySQL struct{ cfg *mysql.Config }

// OpenMySQL parses a go-sql-driver DSN (its database, if any, is ignored)
// and refuses a server on another machine: the tools create and drop
// databases, and measure, on loopback only.
func OpenMySQL(dsn string) (*MySQL, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.Net != "unix" && !IsLoopback(cfg.Addr) {
		return nil, fmt.Errorf("%s is not a loopback address", cfg.Addr)
	}
	cfg.DBName = ""
	return &MySQL{cfg: cfg}, nil
}

// DSN is the DSN of database db on the server, same user.
func (m *MySQL) DSN(db string) string {
	c := m.cfg.Clone()
	c.DBName = db
	return c.FormatDSN()
}

var dbName = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Exec runs statements on a connection with no database selected.
func (m *MySQL) Exec(ctx context.Context, stmts ...string) error {
	db, err := sql.Open("mysql", m.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// CreateDatabase creates db, when missing, with the service's character set.
func (m *MySQL) CreateDatabase(ctx context.Context, db string) error {
	if !dbName.MatchString(db) {
		return fmt.Errorf("database name %q: letters, digits and _ only", db)
	}
	return m.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+db+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
}

// DropDatabase drops db if it exists.
func (m *MySQL) DropDatabase(ctx context.Context, db string) error {
	if !dbName.MatchString(db) {
		return fmt.Errorf("database name %q: letters, digits and _ only", db)
	}
	return m.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`")
}
