package repository

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pressly/goose/v3"
)

// book_detail keeps each book's genres and copies beside the book, as JSON,
// so that an uncached book page is one row read by primary key from each of
// four tables (book, book_detail, author, language) instead of a join of
// six with a row per genre and per copy: MariaDB spends about a third of
// the CPU on it.
//
//	genres: a JSON array of genre names;
//	copies: a JSON array of [id, imprint, status, due back as YYYY-MM-DD or null].
//
// Catalog.Book puts both in order: JSON_ARRAYAGG has no ORDER BY in MySQL 8
// or go-mysql-server.
//
// On MySQL and MariaDB, triggers rewrite a book's row in the same
// transaction as any change to its copies, its genre links or a genre's
// name, so the row is never older than the rows it is built from.
// go-mysql-server, the embedded engine, gets no triggers: its AFTER
// triggers do not see the rows their statement changed. Its catalog is
// written only by Seed, which ends with RebuildBookDetail.

// bookDetailVersion is the goose version of the migration that creates
// book_detail; the SQL migrations before it are files in migrations/.
const bookDetailVersion = 4

// The two columns as computed from the rows they summarise, for the book
// whose id is the expression that replaces :book.
const (
	genresOfBook = `COALESCE((SELECT JSON_ARRAYAGG(g.name) FROM book_genre bg JOIN genre g ON g.id = bg.genre_id
		WHERE bg.book_id = :book), '[]')`
	copiesOfBook = `COALESCE((SELECT JSON_ARRAYAGG(JSON_ARRAY(i.id, i.imprint, i.status, DATE_FORMAT(i.due_back, '%Y-%m-%d')))
		FROM book_instance i WHERE i.book_id = :book), '[]')`
)

func ofBook(column, book string) string { return strings.ReplaceAll(column, ":book", book) }

// bookDetailTriggers keep book_detail current on MySQL and MariaDB. A
// foreign-key action fires no trigger, so deleting a genre first deletes
// its links itself, which refreshes their books.
var bookDetailTriggers = []struct{ name, on, do string }{
	{"book_detail_on_book_insert", "AFTER INSERT ON book FOR EACH ROW",
		"INSERT INTO book_detail (book_id, genres, copies) VALUES (NEW.id, " + ofBook(genresOfBook, "NEW.id") + ", " + ofBook(copiesOfBook, "NEW.id") + ")" +
			" ON DUPLICATE KEY UPDATE genres = VALUES(genres), copies = VALUES(copies)"}, // a row left by a delete with foreign key checks off
	{"book_detail_on_copy_insert", "AFTER INSERT ON book_instance FOR EACH ROW",
		"UPDATE book_detail d SET d.copies = " + ofBook(copiesOfBook, "d.book_id") + " WHERE d.book_id = NEW.book_id"},
	{"book_detail_on_copy_update", "AFTER UPDATE ON book_instance FOR EACH ROW",
		"UPDATE book_detail d SET d.copies = " + ofBook(copiesOfBook, "d.book_id") + " WHERE d.book_id IN (NEW.book_id, OLD.book_id)"},
	{"book_detail_on_copy_delete", "AFTER DELETE ON book_instance FOR EACH ROW",
		"UPDATE book_detail d SET d.copies = " + ofBook(copiesOfBook, "d.book_id") + " WHERE d.book_id = OLD.book_id"},
	{"book_detail_on_genre_link_insert", "AFTER INSERT ON book_genre FOR EACH ROW",
		"UPDATE book_detail d SET d.genres = " + ofBook(genresOfBook, "d.book_id") + " WHERE d.book_id = NEW.book_id"},
	{"book_detail_on_genre_link_update", "AFTER UPDATE ON book_genre FOR EACH ROW",
		"UPDATE book_detail d SET d.genres = " + ofBook(genresOfBook, "d.book_id") + " WHERE d.book_id IN (NEW.book_id, OLD.book_id)"},
	{"book_detail_on_genre_link_delete", "AFTER DELETE ON book_genre FOR EACH ROW",
		"UPDATE book_detail d SET d.genres = " + ofBook(genresOfBook, "d.book_id") + " WHERE d.book_id = OLD.book_id"},
	{"book_detail_on_genre_rename", "AFTER UPDATE ON genre FOR EACH ROW",
		"UPDATE book_detail d SET d.genres = " + ofBook(genresOfBook, "d.book_id") +
			" WHERE d.book_id IN (SELECT l.book_id FROM book_genre l WHERE l.genre_id = NEW.id)"},
	{"book_genre_on_genre_delete", "BEFORE DELETE ON genre FOR EACH ROW",
		"DELETE FROM book_genre WHERE genre_id = OLD.id"},
}

// raiseAggregateLimit lets MariaDB's JSON_ARRAYAGG build a column as long
// as MEDIUMTEXT holds (16 MiB): it cuts at group_concat_max_len, 1 MiB by
// default, some 4,000 copies of one book with long imprints. It raises the
// limit for the session it runs in, a writer's in a trigger.
const raiseAggregateLimit = "SET SESSION group_concat_max_len = GREATEST(@@SESSION.group_concat_max_len, 16777215)"

// bulkLoadVariable, a user variable, when set on a connection turns the
// triggers off for its statements: Seed sets it, as a row-by-row rewrite
// made a million copies take minutes instead of seconds, and rebuilds
// book_detail at the end.
const bulkLoadVariable = "locallibrary_bulk_load"

// bookDetailMigration creates book_detail, fills it, and adds the triggers
// where the engine runs them. It is a Go migration because that last part
// depends on the engine. DDL commits by itself in MySQL, so it runs
// without a transaction, and can run again after failing halfway (say,
// for want of the privilege to create triggers): goose records it only
// once it has succeeded.
func bookDetailMigration() *goose.Migration {
	up := func(ctx context.Context, db *sql.DB) error {
		const create = `CREATE TABLE IF NOT EXISTS book_detail (
    book_id BIGINT     NOT NULL,
    genres  MEDIUMTEXT NOT NULL,
    copies  MEDIUMTEXT NOT NULL,
    PRIMARY KEY (book_id),
    CONSTRAINT book_detail_book_fk FOREIGN KEY (book_id) REFERENCES book (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`
		if _, err := db.ExecContext(ctx, create); err != nil {
			return fmt.Errorf("create book_detail: %w", err)
		}
		embedded, err := isEmbeddedEngine(ctx, db)
		if err != nil {
			return err
		}
		if !embedded {
			for _, t := range bookDetailTriggers {
				if _, err := db.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+t.name); err != nil {
					return fmt.Errorf("drop trigger %s: %w", t.name, err)
				}
				q := "CREATE TRIGGER " + t.name + " " + t.on + " BEGIN IF @" + bulkLoadVariable + " IS NULL THEN " +
					raiseAggregateLimit + "; " + t.do + "; END IF; END"
				if _, err := db.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("create trigger %s (with binary logging on, MySQL wants SUPER or log_bin_trust_function_creators=ON): %w", t.name, err)
				}
			}
		}
		// After the triggers: a change made meanwhile is either in the
		// rebuild or fires them.
		return RebuildBookDetail(ctx, db)
	}
	down := func(ctx context.Context, db *sql.DB) error {
		for _, t := range bookDetailTriggers {
			if _, err := db.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+t.name); err != nil {
				return fmt.Errorf("drop trigger %s: %w", t.name, err)
			}
		}
		_, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS book_detail`)
		return err
	}
	return goose.NewGoMigration(bookDetailVersion, &goose.GoFunc{RunDB: up}, &goose.GoFunc{RunDB: down})
}

// RebuildBookDetail computes every book's book_detail row from the
// catalog's rows. The migration and Seed run it, and so can an operator
// after loading rows with the triggers off or after a TRUNCATE (which
// fires no triggers): `locallibrary rebuild`. It goes through the books
// in chunks of rebuildChunk ids, each its own statement, so that no write
// to the catalog waits for more than one chunk's locks.
func RebuildBookDetail(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx) // raiseAggregateLimit holds for its session
	if err != nil {
		return fmt.Errorf("rebuild book_detail: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, raiseAggregateLimit); err != nil {
		return fmt.Errorf("rebuild book_detail: %w", err)
	}
	var lastID sql.NullInt64 // go-mysql-server answers no row for an empty table
	if err := conn.QueryRowContext(ctx, `SELECT MAX(id) FROM book`).Scan(&lastID); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("rebuild book_detail: %w", err)
	}
	q := `REPLACE INTO book_detail (book_id, genres, copies)
SELECT b.id, ` + ofBook(genresOfBook, "b.id") + `, ` + ofBook(copiesOfBook, "b.id") + `
FROM book b WHERE b.id BETWEEN ? AND ?`
	for from := int64(0); from <= lastID.Int64; from += rebuildChunk {
		if _, err := conn.ExecContext(ctx, q, from, from+rebuildChunk-1); err != nil {
			return fmt.Errorf("rebuild book_detail (books %d to %d): %w", from, from+rebuildChunk-1, err)
		}
	}
	return nil
}

// rebuildChunk is how many book ids one rebuild statement covers: about
// 0.2 s of MariaDB at ten copies a book.
const rebuildChunk = 10_000

// isEmbeddedEngine tells go-mysql-server (which reports itself as "Dolt")
// from MySQL and MariaDB.
func isEmbeddedEngine(ctx context.Context, db *sql.DB) (bool, error) {
	var comment string
	if err := db.QueryRowContext(ctx, `SELECT @@version_comment`).Scan(&comment); err != nil {
		return false, fmt.Errorf("ask the server what it is: %w", err)
	}
	return comment == "Dolt", nil
}
