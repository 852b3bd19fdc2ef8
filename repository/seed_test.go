package repository_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
)

// smallSeed seeds in well under a second on every backend.
var smallSeed = repository.SeedOptions{Authors: 15, Books: 40, CopiesPerBook: 3, Seed: 7}

// catalogTables are the seeded tables, each with a total order of its rows.
var catalogTables = []struct{ name, orderBy string }{
	{"author", "id"},
	{"genre", "id"},
	{"language", "id"},
	{"book", "id"},
	{"book_genre", "book_id, genre_id"},
	{"book_instance", "id"},
}

// checksums returns a hash of each catalog table's rows, in order.
func checksums(t *testing.T, db *sqlx.DB) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, tbl := range catalogTables {
		rows, err := db.Queryx("SELECT * FROM " + tbl.name + " ORDER BY " + tbl.orderBy)
		if err != nil {
			t.Fatalf("read %s: %v", tbl.name, err)
		}
		h := sha256.New()
		n := 0
		for rows.Next() {
			vals, err := rows.SliceScan()
			if err != nil {
				t.Fatalf("read %s: %v", tbl.name, err)
			}
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					fmt.Fprintf(h, "%s|", v)
				case time.Time:
					fmt.Fprintf(h, "%s|", v.Format(time.DateOnly))
				default:
					fmt.Fprintf(h, "%v|", v)
				}
			}
			h.Write([]byte{'\n'})
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", tbl.name, err)
		}
		rows.Close()
		sums[tbl.name] = fmt.Sprintf("%d rows %s", n, hex.EncodeToString(h.Sum(nil))[:16])
	}
	return sums
}

func count(t *testing.T, db *sqlx.DB, q string) int64 {
	t.Helper()
	var n int64
	if err := db.Get(&n, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestSeedCountsMatchTables(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t)
			res := repotest.MustSeed(t, db, smallSeed)
			wantRes := repository.SeedResult{Authors: 15, Books: 40, Copies: 120, Genres: res.Genres, Languages: res.Languages, Took: res.Took}
			if res != wantRes || res.Genres < 8 || res.Languages < 5 {
				t.Errorf("SeedResult = %+v, want %+v with at least 8 genres and 5 languages", res, wantRes)
			}

			got, err := repository.NewCatalog(db, repository.CatalogOptions{}).Counts(testContext(t))
			if err != nil {
				t.Fatalf("Counts: %v", err)
			}
			want := repository.Counts{
				Books:           count(t, db, "SELECT COUNT(*) FROM book"),
				Copies:          count(t, db, "SELECT COUNT(*) FROM book_instance"),
				CopiesAvailable: count(t, db, "SELECT COUNT(*) FROM book_instance WHERE status = 'a'"),
				Authors:         count(t, db, "SELECT COUNT(*) FROM author"),
				Genres:          count(t, db, "SELECT COUNT(*) FROM genre"),
			}
			if got != want {
				t.Errorf("Counts = %+v, want the tables' counts %+v", got, want)
			}
			if got.Books != res.Books || got.Copies != res.Copies || got.Authors != res.Authors || got.Genres != res.Genres {
				t.Errorf("Counts = %+v, want the seed's %+v", got, res)
			}
			if got.CopiesAvailable == 0 || got.CopiesAvailable == got.Copies {
				t.Errorf("%d of %d copies available, want some but not all", got.CopiesAvailable, got.Copies)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM language"); n != res.Languages {
				t.Errorf("%d languages, want %d", n, res.Languages)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM book_genre"); n < res.Books || n > 3*res.Books {
				t.Errorf("%d book genres for %d books, want one to three each", n, res.Books)
			}
			if n := count(t, db, "SELECT COUNT(*) FROM book b WHERE NOT EXISTS (SELECT 1 FROM book_genre bg WHERE bg.book_id = b.id)"); n != 0 {
				t.Errorf("%d books without a genre", n)
			}
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSeedRowsArePlausible(t *testing.T) {
	db := repotest.MustOpen(t)
	repotest.MustSeed(t, db, smallSeed)

	var copies []struct {
		ID      string  `db:"id"`
		Status  string  `db:"status"`
		DueBack *string `db:"due_back"`
		Imprint string  `db:"imprint"`
	}
	if err := db.Select(&copies, "SELECT id, status, CAST(due_back AS CHAR) AS due_back, imprint FROM book_instance"); err != nil {
		t.Fatalf("read copies: %v", err)
	}
	imprint := regexp.MustCompile(`^[A-Z].*, (19|20)\d\d$`)
	for _, c := range copies {
		if !uuidV4.MatchString(c.ID) {
			t.Errorf("copy id %q is not a version 4 UUID", c.ID)
		}
		if wantDue := c.Status == "o" || c.Status == "r"; (c.DueBack != nil) != wantDue {
			t.Errorf("copy %s status %q has due_back %v", c.ID, c.Status, c.DueBack)
		}
		if !imprint.MatchString(c.Imprint) {
			t.Errorf("copy %s imprint %q, want like \"Penguin, 2003\"", c.ID, c.Imprint)
		}
	}

	var isbns []string
	if err := db.Select(&isbns, "SELECT isbn FROM book"); err != nil {
		t.Fatalf("read ISBNs: %v", err)
	}
	for _, isbn := range isbns {
		if !validISBN13(isbn) || isbn[:3] != "978" {
			t.Errorf("ISBN %q is not a valid 978 ISBN-13", isbn)
		}
	}

	// Seed loads with foreign key checks off: the rows must hold anyway.
	orphans := []string{
		`SELECT COUNT(*) FROM book_instance c LEFT JOIN book b ON b.id = c.book_id WHERE b.id IS NULL`,
		`SELECT COUNT(*) FROM book_genre bg LEFT JOIN book b ON b.id = bg.book_id WHERE b.id IS NULL`,
		`SELECT COUNT(*) FROM book_genre bg LEFT JOIN genre g ON g.id = bg.genre_id WHERE g.id IS NULL`,
		`SELECT COUNT(*) FROM book b LEFT JOIN author a ON a.id = b.author_id WHERE b.author_id IS NOT NULL AND a.id IS NULL`,
		`SELECT COUNT(*) FROM book b LEFT JOIN language l ON l.id = b.language_id WHERE b.language_id IS NOT NULL AND l.id IS NULL`,
	}
	for _, q := range orphans {
		if n := count(t, db, q); n != 0 {
			t.Errorf("%d orphans: %s", n, q)
		}
	}

	var bad int64
	if err := db.Get(&bad, `SELECT COUNT(*) FROM author
		WHERE first_name = '' OR last_name = '' OR date_of_death < date_of_birth
		OR (date_of_birth IS NULL AND date_of_death IS NOT NULL)`); err != nil {
		t.Fatalf("check authors: %v", err)
	}
	if bad != 0 {
		t.Errorf("%d authors with an empty name or impossible dates", bad)
	}
}

func TestSeedLeavesForeignKeyChecksOn(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t)
			repotest.MustSeed(t, db, smallSeed)
			// Hold every connection of the pool at once, so each is checked.
			for i := range db.Stats().MaxOpenConnections {
				conn, err := db.Connx(testContext(t))
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				t.Cleanup(func() { conn.Close() })
				var on int64
				if err := conn.GetContext(testContext(t), &on, "SELECT @@SESSION.foreign_key_checks"); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				if on != 1 {
					t.Errorf("connection %d has foreign_key_checks = %d after Seed, want 1", i, on)
				}
			}
		})
	}
}

func validISBN13(s string) bool {
	if len(s) != 13 {
		return false
	}
	sum := 0
	for i, c := range s {
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return sum%10 == 0
}

func TestSeedIsDeterministic(t *testing.T) {
	var embedded map[string]string
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			first, second, other := b.Open(t), b.Open(t), b.Open(t)
			repotest.MustSeed(t, first, smallSeed)
			repotest.MustSeed(t, second, smallSeed)
			otherSeed := smallSeed
			otherSeed.Seed++
			repotest.MustSeed(t, other, otherSeed)

			a, c, o := checksums(t, first), checksums(t, second), checksums(t, other)
			for _, tbl := range catalogTables {
				if a[tbl.name] != c[tbl.name] {
					t.Errorf("%s: two seeds with the same options differ: %s vs %s", tbl.name, a[tbl.name], c[tbl.name])
				}
			}
			for _, tbl := range []string{"author", "book", "book_instance"} {
				if a[tbl] == o[tbl] {
					t.Errorf("%s: seeds %d and %d gave the same rows %s", tbl, smallSeed.Seed, otherSeed.Seed, a[tbl])
				}
			}
			// The same seed gives the same rows whatever the engine.
			if b.Name == "embedded" {
				embedded = a
			} else if embedded != nil {
				for _, tbl := range catalogTables {
					if a[tbl.name] != embedded[tbl.name] {
						t.Errorf("%s: %s rows %s differ from embedded %s", tbl.name, b.Name, a[tbl.name], embedded[tbl.name])
					}
				}
			}
		})
	}
}

func TestSeedRefusesNonEmptyCatalog(t *testing.T) {
	tests := []struct {
		name  string
		setup []string
	}{
		{"an author", []string{`INSERT INTO author (id, first_name, last_name) VALUES (1, 'Jane', 'Austen')`}},
		{"a genre", []string{`INSERT INTO genre (id, name) VALUES (1, 'Poetry')`}},
		{"a language", []string{`INSERT INTO language (id, name) VALUES (1, 'Latin')`}},
		{"a book", []string{`INSERT INTO book (id, title, summary, isbn) VALUES (1, 'Emma', 'A matchmaker errs.', '9780141439587')`}},
		{"a copy", []string{
			`INSERT INTO book (id, title, summary, isbn) VALUES (1, 'Emma', 'A matchmaker errs.', '9780141439587')`,
			`INSERT INTO book_instance (id, book_id, imprint, status) VALUES ('00000000-0000-4000-8000-000000000001', 1, 'Penguin, 2003', 'a')`,
		}},
	}
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					db := b.Open(t)
					for _, q := range tt.setup {
						if _, err := db.Exec(q); err != nil {
							t.Fatalf("setup: %v\n%s", err, q)
						}
					}
					before := checksums(t, db)
					_, err := repository.Seed(testContext(t), db, smallSeed)
					if !errors.Is(err, repository.ErrNotEmpty) {
						t.Fatalf("Seed on a catalog with %s: error %v, want ErrNotEmpty", tt.name, err)
					}
					after := checksums(t, db)
					for _, tbl := range catalogTables {
						if before[tbl.name] != after[tbl.name] {
							t.Errorf("%s changed: %s, was %s", tbl.name, after[tbl.name], before[tbl.name])
						}
					}
				})
			}
		})
	}
}

func TestSeedRejectsBadOptions(t *testing.T) {
	tests := []repository.SeedOptions{
		{Authors: -1, Books: 1},
		{Books: -1},
		{Books: 1, CopiesPerBook: -1},
		{Books: 200_000_000},
	}
	db := repotest.MustOpen(t)
	for _, opt := range tests {
		if _, err := repository.Seed(testContext(t), db, opt); err == nil || errors.Is(err, repository.ErrNotEmpty) {
			t.Errorf("Seed(%+v) error = %v, want an options error", opt, err)
		}
	}
	if n := count(t, db, "SELECT COUNT(*) FROM genre"); n != 0 {
		t.Errorf("rejected seeds left %d genres", n)
	}
}

func TestSeedWithoutAuthors(t *testing.T) {
	db := repotest.MustOpen(t)
	res := repotest.MustSeed(t, db, repository.SeedOptions{Books: 5, CopiesPerBook: 1, Seed: 1})
	if res.Books != 5 || res.Authors != 0 || res.Copies != 5 {
		t.Errorf("SeedResult = %+v, want 5 books, no author, 5 copies", res)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM book WHERE author_id IS NOT NULL"); n != 0 {
		t.Errorf("%d books have an author, want none", n)
	}
}
