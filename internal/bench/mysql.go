package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// catalogSize is what `locallibrary seed` is asked for.
type catalogSize struct{ Authors, Books, CopiesPerBook int }

func parseSize(s string) (catalogSize, error) {
	var z catalogSize
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return z, fmt.Errorf("size %q: want authors/books/copies-per-book", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 1 {
			return z, fmt.Errorf("size %q: %q is not a positive number", s, p)
		}
		n[i] = v
	}
	return catalogSize{n[0], n[1], n[2]}, nil
}

func (z catalogSize) copies() int { return z.Books * z.CopiesPerBook }

// benchUser is the MariaDB account the services connect as, so that the
// queries they send can be told apart from anyone else's on a shared server
// (MariaDB's per-user statistics).
const benchUser = "llbench"

// mariadb is the harness's connection to the server, as an administrator.
type mariadb struct {
	admin   *sql.DB
	addr    string // host:port
	adminCf *mysql.Config
	version string

	userStats     bool // USER_STATISTICS can count the services' queries
	restoreStatOn bool // userstat was off before the harness turned it on
}

var dbNamePattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// openMariaDB connects as the DSN's (administrator) user, starting the
// server first when it is installed here but not running.
func openMariaDB(ctx context.Context, dsn string) (*mariadb, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("-mysql: %w", err)
	}
	cfg.DBName = ""
	cfg.MultiStatements = false
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if err := pingWithStart(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("MariaDB at %s: %w", cfg.Addr, err)
	}
	m := &mariadb{admin: db, addr: cfg.Addr, adminCf: cfg}
	_ = db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&m.version)
	return m, nil
}

func pingWithStart(ctx context.Context, db *sql.DB) error {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := db.PingContext(pctx)
	cancel()
	if err == nil {
		return nil
	}
	const daemon = "/usr/sbin/mariadbd"
	if _, statErr := os.Stat(daemon); statErr != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench: MariaDB not answering; starting", daemon)
	out, startErr := exec.CommandContext(ctx, "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", daemon).CombinedOutput()
	if startErr != nil {
		return fmt.Errorf("%w; starting it failed: %v %s", err, startErr, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err = db.PingContext(ctx); err == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

func (m *mariadb) close() {
	if m.restoreStatOn {
		_, _ = m.admin.Exec("SET GLOBAL userstat = OFF")
	}
	m.admin.Close()
}

// serviceDSN is the DSN a service uses for database db.
func (m *mariadb) serviceDSN(db string) string {
	if !m.userStats {
		c := m.adminCf.Clone()
		c.DBName = db
		return c.FormatDSN()
	}
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr, c.DBName = benchUser, "tcp", m.addr, db
	return c.FormatDSN()
}

// adminDSN is the DSN the migrate and seed commands use.
func (m *mariadb) adminDSN(db string) string {
	c := m.adminCf.Clone()
	c.DBName = db
	return c.FormatDSN()
}

// setupUserStats creates the bench account with rights on the benchmark's
// databases and turns MariaDB's per-user statistics on (off again at the
// end if it was off). Without them, queries are counted server-wide.
func (m *mariadb) setupUserStats(ctx context.Context, dbs []string) error {
	var name, val string
	if err := m.admin.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'userstat'").Scan(&name, &val); err != nil {
		return fmt.Errorf("no per-user statistics on this server: %w", err)
	}
	stmts := []string{}
	for _, host := range []string{"127.0.0.1", "localhost", "::1"} {
		stmts = append(stmts, fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%s'", benchUser, host))
		for _, db := range dbs {
			stmts = append(stmts, fmt.Sprintf("GRANT ALL ON `%s`.* TO '%s'@'%s'", db, benchUser, host))
		}
	}
	if !strings.EqualFold(val, "ON") && val != "1" {
		stmts = append(stmts, "SET GLOBAL userstat = ON")
		m.restoreStatOn = true
	}
	for _, s := range stmts {
		if _, err := m.admin.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	m.userStats = true
	return nil
}

// queries is how many statements the services have sent: the bench
// account's SELECT and UPDATE commands when per-user statistics are on,
// and apart from them its other commands (a new connection's setup,
// pings); without per-user statistics, the server's Questions (which then
// include anyone else's) and no others.
func (m *mariadb) queries(ctx context.Context) (queries, others int64, err error) {
	if m.userStats {
		err = m.admin.QueryRowContext(ctx, `SELECT COALESCE(SUM(SELECT_COMMANDS + UPDATE_COMMANDS), 0), COALESCE(SUM(OTHER_COMMANDS), 0)
FROM information_schema.USER_STATISTICS WHERE USER = ?`, benchUser).Scan(&queries, &others)
		return queries, others, err
	}
	var name string
	err = m.admin.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Questions'").Scan(&name, &queries)
	return queries - 1, 0, err // less this statement itself
}

// drain waits until no statement of the services is running any more,
// up to limit, then kills those that still are, and says how many it
// found and killed. A request that timed out leaves its query running in
// the server (the driver only drops the connection); without this, one
// run's abandoned queries would slow the next run's target.
func (m *mariadb) drain(ctx context.Context, limit time.Duration) (running, killed int, err error) {
	if !m.userStats {
		return 0, 0, nil
	}
	const q = `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND = 'Query'`
	deadline := time.Now().Add(limit)
	for first := true; ; first = false {
		rows, err := m.admin.QueryContext(ctx, q, benchUser)
		if err != nil {
			return running, killed, err
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return running, killed, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if first {
			running = len(ids)
		}
		if len(ids) == 0 {
			return running, killed, nil
		}
		if time.Now().After(deadline) {
			for _, id := range ids {
				if _, err := m.admin.ExecContext(ctx, "KILL QUERY "+strconv.FormatInt(id, 10)); err == nil {
					killed++
				}
			}
			return running, killed, nil
		}
		select {
		case <-ctx.Done():
			return running, killed, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// catalogCounts returns the rows of the seeded tables, or ok=false when
// the database or its tables are missing.
func (m *mariadb) catalogCounts(ctx context.Context, db string) (authors, books, copies int, ok bool) {
	q := fmt.Sprintf("SELECT (SELECT COUNT(*) FROM `%[1]s`.author), (SELECT COUNT(*) FROM `%[1]s`.book), (SELECT COUNT(*) FROM `%[1]s`.book_instance)", db)
	if err := m.admin.QueryRowContext(ctx, q).Scan(&authors, &books, &copies); err != nil {
		return 0, 0, 0, false
	}
	return authors, books, copies, true
}

// seedRecord remembers how long a catalog took to seed, for the reruns
// that reuse it. It is kept in the database's comment, so it stays with
// the catalog whatever -out a later run uses.
type seedRecord struct {
	Size   catalogSize   `json:"size"`
	Took   time.Duration `json:"took_ns"`
	When   time.Time     `json:"when"`
	Reused bool          `json:"reused"`
}

func (m *mariadb) readSeedRecord(ctx context.Context, db string) (seedRecord, bool) {
	var comment string
	var rec seedRecord
	err := m.admin.QueryRowContext(ctx, "SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).Scan(&comment)
	if err != nil || json.Unmarshal([]byte(comment), &rec) != nil {
		return rec, false
	}
	return rec, true
}

func (m *mariadb) writeSeedRecord(ctx context.Context, db string, rec seedRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// DDL takes no placeholders: quote the comment as a string literal.
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(string(raw))
	_, err = m.admin.ExecContext(ctx, "ALTER DATABASE `"+db+"` COMMENT = '"+quoted+"'")
	return err
}

// prepareCatalog makes db hold exactly a seeded catalog of size z: reused
// when its counts already match (unless force), otherwise dropped,
// created, migrated and seeded with the service's own commands.
func prepareCatalog(ctx context.Context, m *mariadb, p *testkit.Procs, bin, db string, z catalogSize, force bool) (seedRecord, error) {
	if !dbNamePattern.MatchString(db) {
		return seedRecord{}, fmt.Errorf("database name %q: letters, digits and _ only", db)
	}
	env := []string{"LOCALLIBRARY_MYSQL_DSN=" + m.adminDSN(db)}
	migrate := func() error {
		_, err := p.Run(ctx, "migrate-"+db, env, bin, "migrate")
		return err
	}
	if !force {
		a, b, c, ok := m.catalogCounts(ctx, db)
		if ok && a == z.Authors && b == z.Books && c == z.copies() {
			// A reused catalog gets the migrations the service has since gained.
			if err := migrate(); err != nil {
				return seedRecord{}, err
			}
			rec, found := m.readSeedRecord(ctx, db)
			if !found || rec.Size != z {
				rec = seedRecord{Size: z}
			}
			rec.Reused = true
			return rec, nil
		}
	}
	fmt.Fprintf(os.Stderr, "bench: seeding %s: %d authors, %d books, %d copies\n", db, z.Authors, z.Books, z.copies())
	for _, s := range []string{"DROP DATABASE IF EXISTS `" + db + "`",
		"CREATE DATABASE `" + db + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"} {
		if _, err := m.admin.ExecContext(ctx, s); err != nil {
			return seedRecord{}, fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := migrate(); err != nil {
		return seedRecord{}, err
	}
	took, err := p.Run(ctx, "seed-"+db, env, bin, "seed",
		"--authors", strconv.Itoa(z.Authors), "--books", strconv.Itoa(z.Books),
		"--copies-per-book", strconv.Itoa(z.CopiesPerBook), "--seed", "1")
	if err != nil {
		return seedRecord{}, err
	}
	a, b, c, ok := m.catalogCounts(ctx, db)
	if !ok || a != z.Authors || b != z.Books || c != z.copies() {
		return seedRecord{}, fmt.Errorf("after seeding %s: %d authors, %d books, %d copies; want %d, %d, %d",
			db, a, b, c, z.Authors, z.Books, z.copies())
	}
	rec := seedRecord{Size: z, Took: took, When: time.Now().UTC()}
	if err := m.writeSeedRecord(ctx, db, rec); err != nil {
		fmt.Fprintf(os.Stderr, "bench: could not keep the seed time in %s's comment: %v\n", db, err)
	}
	return rec, nil
}
