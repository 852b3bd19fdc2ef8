//go:build !noembeddeddb

package embedded

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// startEngine runs an engine for the test and returns its DSN, parsed.
func startEngine(t *testing.T) *mysql.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, stop, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("Start's DSN %q: %v", dsn, err)
	}
	return cfg
}

func open(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestOnlyThisProcessGetsIn: another local user who finds the port, with
// the names anyone would try or a wrong password, is refused; the DSN Start
// returned gets in.
func TestOnlyThisProcessGetsIn(t *testing.T) {
	own := startEngine(t)
	if own.User == "root" || own.Passwd == "" {
		t.Errorf("Start's DSN has user %q and password %q: a guessable account", own.User, own.Passwd)
	}
	tests := []struct{ name, user, password string }{
		{"root, no password", "root", ""},
		{"root, the process's password", "root", own.Passwd},
		{"the process's user, no password", own.User, ""},
		{"the process's user, a wrong password", own.User, own.Passwd + "x"},
		{"anyone", "mallory", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := *own
			other.User, other.Passwd = tt.user, tt.password
			err := open(t, &other).Ping()
			if err == nil {
				t.Fatal("a client without this process's credentials got in")
			}
			// Refused by the server at the handshake (1045 access denied,
			// or 2012 for a user it does not know), not a network error.
			var refusal *mysql.MySQLError
			if !errors.As(err, &refusal) || (refusal.Number != 1045 && refusal.Number != 2012) {
				t.Errorf("not refused by the server's authentication: %v", err)
			}
		})
	}
	if err := open(t, own).Ping(); err != nil {
		t.Fatalf("the DSN Start returned is refused: %v", err)
	}
	// A second start makes another account: the first DSN does not open it.
	second := startEngine(t)
	if second.User == own.User || second.Passwd == own.Passwd {
		t.Error("two starts made the same account")
	}
	reused := *second
	reused.User, reused.Passwd = own.User, own.Passwd
	if err := open(t, &reused).Ping(); err == nil {
		t.Error("the first engine's credentials open the second")
	}
}

// TestFileFunctionsAreOff: even with the credentials, SQL cannot read or
// write the files of the user running the process.
func TestFileFunctionsAreOff(t *testing.T) {
	db := open(t, startEngine(t))
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("the developer's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var content sql.NullString
	err := db.QueryRowContext(ctx, "SELECT LOAD_FILE(?)", secret).Scan(&content)
	if err == nil && content.Valid {
		t.Errorf("LOAD_FILE read a readable file: %q", content.String)
	}

	out := filepath.Join(dir, "written.txt")
	if _, err := db.ExecContext(ctx, "SELECT 'planted' INTO OUTFILE '"+out+"'"); err == nil {
		t.Error("SELECT … INTO OUTFILE succeeded")
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("INTO OUTFILE wrote %s", out)
	}
	dump := filepath.Join(dir, "dumped.txt")
	if _, err := db.ExecContext(ctx, "SELECT 'planted' INTO DUMPFILE '"+dump+"'"); err == nil {
		t.Error("SELECT … INTO DUMPFILE succeeded")
	}
	if _, err := os.Stat(dump); err == nil {
		t.Errorf("INTO DUMPFILE wrote %s", dump)
	}

	// Nor can a client turn them back on.
	for _, stmt := range []string{"SET GLOBAL secure_file_priv = ''", "SET SESSION secure_file_priv = ''", "SET @@secure_file_priv = ''"} {
		if _, err := db.ExecContext(ctx, stmt); err == nil {
			t.Errorf("%s succeeded", stmt)
		}
	}
}
