package repository_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
)

// TestBookDetailFollowsTheCatalog changes copies, genre links and genres in
// MariaDB, the way an administrator would, and checks after each change
// that the book page shows it at once: the triggers keep book_detail
// current in the same transaction. At the end every book's row equals a
// rebuild from scratch.
func TestBookDetailFollowsTheCatalog(t *testing.T) {
	catalog, db := openFixture(t, repotest.MariaDB)
	ctx := testContext(t)
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	book := func(id int64) repository.Book {
		t.Helper()
		b, err := catalog.Book(ctx, id)
		if err != nil {
			t.Fatalf("Book(%d): %v", id, err)
		}
		return b
	}
	copyIDs := func(b repository.Book) []string {
		var ids []string
		for _, c := range b.Copies {
			ids = append(ids, c.ID+":"+c.Status)
		}
		return ids
	}
	steps := []struct {
		name   string
		change []string
		book   int64
		genres []string
		copies []string // id:status, in the page's order
	}{
		{"a new book", []string{`INSERT INTO book (id, title, summary, isbn) VALUES (8, 'New', 'New.', '9780000000088')`},
			8, []string{}, nil},
		{"its first copy and genre", []string{
			`INSERT INTO book_instance (id, book_id, imprint, status) VALUES ('e0000000-0000-4000-8000-000000000005', 8, 'Pingüino 日本 😀, 2024', 'a')`,
			`INSERT INTO book_genre (book_id, genre_id) VALUES (8, 2)`},
			8, []string{"Romance"}, []string{"e0000000-0000-4000-8000-000000000005:a"}},
		{"a copy lent out", []string{`UPDATE book_instance SET status = 'o', due_back = '2031-05-06' WHERE id = 'c0000000-0000-4000-8000-000000000001'`},
			7, []string{"Classic", "Romance"}, []string{"a0000000-0000-4000-8000-000000000003:r", "b0000000-0000-4000-8000-000000000002:o", "c0000000-0000-4000-8000-000000000001:o"}},
		{"a copy moved to another book", []string{`UPDATE book_instance SET book_id = 8 WHERE id = 'b0000000-0000-4000-8000-000000000002'`},
			7, []string{"Classic", "Romance"}, []string{"a0000000-0000-4000-8000-000000000003:r", "c0000000-0000-4000-8000-000000000001:o"}},
		{"…and shown on that book", nil,
			8, []string{"Romance"}, []string{"e0000000-0000-4000-8000-000000000005:a", "b0000000-0000-4000-8000-000000000002:o"}},
		{"a copy deleted", []string{`DELETE FROM book_instance WHERE id = 'a0000000-0000-4000-8000-000000000003'`},
			7, []string{"Classic", "Romance"}, []string{"c0000000-0000-4000-8000-000000000001:o"}},
		{"a genre renamed", []string{`UPDATE genre SET name = 'Κλασικά' WHERE id = 3`},
			7, []string{"Romance", "Κλασικά"}, []string{"c0000000-0000-4000-8000-000000000001:o"}},
		{"a genre link removed", []string{`DELETE FROM book_genre WHERE book_id = 7 AND genre_id = 3`},
			7, []string{"Romance"}, []string{"c0000000-0000-4000-8000-000000000001:o"}},
		{"a genre deleted (its links go by cascade, which fires no trigger)", []string{`DELETE FROM genre WHERE id = 2`},
			8, []string{}, []string{"e0000000-0000-4000-8000-000000000005:a", "b0000000-0000-4000-8000-000000000002:o"}},
		{"in a transaction that rolls back", []string{`BEGIN`,
			`UPDATE book_instance SET status = 'm' WHERE book_id = 8`, `ROLLBACK`},
			8, []string{}, []string{"e0000000-0000-4000-8000-000000000005:a", "b0000000-0000-4000-8000-000000000002:o"}},
	}
	for _, s := range steps {
		conn, err := db.Connx(ctx) // BEGIN … ROLLBACK need one connection
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range s.change {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %s: %v", s.name, q, err)
			}
		}
		conn.Close()
		b := book(s.book)
		if !slices.Equal(b.Genres, s.genres) || !slices.Equal(copyIDs(b), s.copies) {
			t.Errorf("%s: book %d shows genres %q, copies %q; want %q, %q", s.name, s.book, b.Genres, copyIDs(b), s.genres, s.copies)
		}
	}

	exec(`DELETE FROM book_instance WHERE book_id = 8`)
	exec(`DELETE FROM book WHERE id = 8`)
	if n := count(t, db, `SELECT COUNT(*) FROM book_detail WHERE book_id = 8`); n != 0 {
		t.Errorf("a deleted book left %d book_detail rows", n)
	}
	before := everyBook(t, catalog)
	if err := repository.RebuildBookDetail(ctx, db.DB); err != nil {
		t.Fatal(err)
	}
	if after := everyBook(t, catalog); !reflect.DeepEqual(before, after) {
		t.Errorf("the triggers' rows differ from a rebuild:\n%+v\n%+v", before, after)
	}
}

// everyBook is the fixture's books as their pages show them.
func everyBook(t *testing.T, catalog *repository.Catalog) []repository.Book {
	t.Helper()
	var books []repository.Book
	for id := int64(1); id <= 7; id++ {
		b, err := catalog.Book(testContext(t), id)
		if err != nil {
			t.Fatalf("Book(%d): %v", id, err)
		}
		books = append(books, b)
	}
	return books
}

// TestSeedLeavesTheTriggersOn: Seed turns the triggers off on its own
// connections only, and back on before they return to the pool.
func TestSeedLeavesTheTriggersOn(t *testing.T) {
	db := repotest.MustMariaDB(t)
	db.SetMaxOpenConns(1) // every statement after the seed reuses its connection
	repotest.MustSeed(t, db, repository.SeedOptions{Authors: 2, Books: 3, CopiesPerBook: 2, Seed: 1})
	ctx := testContext(t)
	if _, err := db.ExecContext(ctx, `UPDATE book_instance SET status = 'r', due_back = '2031-05-06' WHERE book_id = 1`); err != nil {
		t.Fatal(err)
	}
	b, err := repository.NewCatalog(db, repository.CatalogOptions{}).Book(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.Copies {
		if c.Status != "r" {
			t.Errorf("copy %s shows status %q after the update, want r", c.ID, c.Status)
		}
	}
}

// TestBookDetailHoldsThousandsOfCopies: MariaDB cuts JSON_ARRAYAGG at
// group_concat_max_len (1 MiB by default); the triggers and the rebuild
// raise it. 4,500 copies with long imprints make about 1.2 MiB of JSON.
func TestBookDetailHoldsThousandsOfCopies(t *testing.T) {
	catalog, db := openFixture(t, repotest.MariaDB)
	ctx := testContext(t)
	const n = 4500
	imprint := strings.Repeat("Ä long imprint, ", 12)[:190]
	var q strings.Builder
	q.WriteString("INSERT INTO book_instance (id, book_id, imprint, status) VALUES ")
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "('f%035d', 6, '%s', 'a')", i, imprint)
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Loaded as a bulk load is, with the triggers off, then rebuilt.
	for _, stmt := range []string{"SET @locallibrary_bulk_load = 1", q.String(), "SET @locallibrary_bulk_load = NULL"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%.80s: %v", stmt, err)
		}
	}
	if err := repository.RebuildBookDetail(ctx, db.DB); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	// One more, through the trigger, in a session at MariaDB's default limit.
	for _, stmt := range []string{"SET SESSION group_concat_max_len = 1048576",
		"INSERT INTO book_instance (id, book_id, imprint, status) VALUES ('g0000000-0000-4000-8000-000000000001', 6, 'Last', 'm')"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("a copy beyond 1 MiB of JSON: %s: %v", stmt, err)
		}
	}
	b, err := catalog.Book(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Copies) != n+1 {
		t.Errorf("book 6 shows %d copies, want %d", len(b.Copies), n+1)
	}
}
