// Package catalogs makes the catalogs the bench measures, in a
// MySQL they are given: database NAME_3k or NAME_1m (NAME the DSN's,
// llbench if none), made with the service's own migrate and seed commands,
// reused when its counts match, dropped and seeded again when not. An
// account that may not create databases can still have one catalog, in
// the DSN's own database if that is empty or holds it. Nothing else is
// created or changed on the server.
package catalogs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// Size is what `locallibrary seed` is asked for.
type Size struct{ Authors, Books, CopiesPerBook int }

// Copies is the catalog's number of copies.
func (z Size) Copies() int { return z.Books * z.CopiesPerBook }

// Sizes are the two catalogs, named by their copies.
var Sizes = map[string]Size{
	"3k": {Authors: 100, Books: 1000, CopiesPerBook: 3},
	"1m": {Authors: 10_000, Books: 100_000, CopiesPerBook: 10},
}

// DB is a catalog's database, and how it was prepared.
type DB struct {
	Name   string        `json:"database"`
	Size   Size          `json:"size"`
	Seeded time.Duration `json:"seed_ns"` // 0: reused, its counts matched
	DSN    string        `json:"-"`       // the given DSN's account, on this database
}

// Prepare makes the catalogs named in need (keys of Sizes) on the server
// of dsn, with the service binary bin run as children of procs.
func Prepare(ctx context.Context, dsn string, need []string, procs *testkit.Procs, bin string, logf func(string, ...any)) (map[string]*DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("MySQL DSN: %w", err)
	}
	server, err := testkit.OpenMySQL(dsn)
	if err != nil {
		return nil, fmt.Errorf("MySQL DSN: %w", err)
	}
	base := cfg.DBName
	if base == "" {
		base = "llbench"
	}
	out := map[string]*DB{}
	for _, key := range need {
		z, ok := Sizes[key]
		if !ok {
			return nil, fmt.Errorf("no catalog %q", key)
		}
		db := &DB{Name: base + "_" + key, Size: z}
		logf("MySQL %s as %s: catalog %s (%d authors, %d books, %d copies) in database %s, made by the service's migrate and seed commands unless its counts already match; nothing else is created or changed there",
			cfg.Addr, cfg.User, key, z.Authors, z.Books, z.Copies(), db.Name)
		own := true
		if err := server.CreateDatabase(ctx, db.Name); err != nil {
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1044 || len(need) > 1 || cfg.DBName == "" {
				return nil, fmt.Errorf("%w (the account needs the right to create %s_3k and %s_1m, or a DSN naming a database for one catalog)", err, base, base)
			}
			db.Name, own = cfg.DBName, false
			logf("the account may not create %s_%s: catalog %s is in %s itself", base, key, key, db.Name)
		}
		db.DSN = server.DSN(db.Name)
		if err := prepare(ctx, server, db, own, procs, bin, logf); err != nil {
			return nil, err
		}
		out[key] = db
	}
	return out, nil
}

func prepare(ctx context.Context, server *testkit.MySQL, db *DB, own bool, procs *testkit.Procs, bin string, logf func(string, ...any)) error {
	env := []string{"LOCALLIBRARY_MYSQL_DSN=" + db.DSN, "LOCALLIBRARY_LOG_LEVEL=warn"}
	migrate := func() error {
		_, err := procs.Run(ctx, "migrate-"+db.Name, env, bin, "migrate")
		return err
	}
	if err := migrate(); err != nil {
		return err
	}
	z := db.Size
	a, b, c, err := counts(ctx, db.DSN)
	switch {
	case err != nil:
		return err
	case a == z.Authors && b == z.Books && c == z.Copies():
		logf("%s: reused, its counts match", db.Name)
		return nil
	case a+b+c > 0 && !own:
		return fmt.Errorf("database %s holds another catalog (%d authors, %d books, %d copies): give an empty database, or the right to create one", db.Name, a, b, c)
	case a+b+c > 0:
		logf("%s: %d authors, %d books, %d copies; dropped and seeded again", db.Name, a, b, c)
		if err := server.DropDatabase(ctx, db.Name); err != nil {
			return err
		}
		if err := server.CreateDatabase(ctx, db.Name); err != nil {
			return err
		}
		if err := migrate(); err != nil {
			return err
		}
	}
	logf("seeding %s", db.Name)
	took, err := procs.Run(ctx, "seed-"+db.Name, env, bin, "seed", "--authors", strconv.Itoa(z.Authors),
		"--books", strconv.Itoa(z.Books), "--copies-per-book", strconv.Itoa(z.CopiesPerBook), "--seed", "1")
	if err != nil {
		return err
	}
	db.Seeded = took
	logf("%s: seeded in %v", db.Name, took.Round(time.Millisecond))
	return nil
}

func counts(ctx context.Context, dsn string) (authors, books, copies int, err error) {
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close()
	const q = `SELECT (SELECT COUNT(*) FROM author), (SELECT COUNT(*) FROM book), (SELECT COUNT(*) FROM book_instance)`
	err = conn.QueryRowContext(ctx, q).Scan(&authors, &books, &copies)
	return authors, books, copies, err
}
