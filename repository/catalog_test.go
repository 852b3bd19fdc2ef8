package repository_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
)

// fixture is a small hand-made catalog whose orderings hold under any
// collation: ties on title and on name are broken by id.
var fixture = []string{
	`INSERT INTO author (id, first_name, last_name, date_of_birth, date_of_death) VALUES
		(1, 'John', 'Tolkien', '1892-01-03', '1973-09-02'),
		(2, 'Jane', 'Austen', '1775-12-16', '1817-07-18'),
		(3, 'Emily', 'Bronte', '1818-07-30', NULL),
		(4, 'Charlotte', 'Bronte', NULL, NULL),
		(5, 'Jane', 'Austen', NULL, NULL)`,
	`INSERT INTO genre (id, name) VALUES (1, 'Fantasy'), (2, 'Romance'), (3, 'Classic')`,
	`INSERT INTO language (id, name) VALUES (1, 'English'), (2, 'French')`,
	`INSERT INTO book (id, title, author_id, summary, isbn, language_id) VALUES
		(1, 'The Hobbit', 1, 'A hobbit goes there and back again.', '9780261102217', 1),
		(2, 'Emma', 2, 'A matchmaker errs.', '9780141439587', 1),
		(3, 'Wuthering Heights', 3, 'Moors.', '9780141439556', 1),
		(4, 'Jane Eyre', 4, 'A governess.', '9780141441146', 2),
		(5, 'Emma', 5, 'Another Emma.', '9780000000002', NULL),
		(6, 'Anonymous Tales', NULL, 'Nobody wrote these.', '9780000000019', NULL),
		(7, 'Pride and Prejudice', 2, 'First impressions.', '9780141439518', 1)`,
	`INSERT INTO book_genre (book_id, genre_id) VALUES (1, 1), (2, 2), (2, 3), (7, 3), (7, 2)`,
	`INSERT INTO book_instance (id, book_id, imprint, due_back, status) VALUES
		('c0000000-0000-4000-8000-000000000001', 7, 'Penguin, 2003', NULL, 'a'),
		('b0000000-0000-4000-8000-000000000002', 7, 'Vintage, 1990', '2025-01-10', 'o'),
		('a0000000-0000-4000-8000-000000000003', 7, 'Folio, 2011', '2025-01-05', 'r'),
		('d0000000-0000-4000-8000-000000000004', 1, 'Allen & Unwin, 1937', NULL, 'm')`,
}

// openFixture returns a catalog on b holding the fixture.
func openFixture(t *testing.T, b repotest.Backend) (*repository.Catalog, *sqlx.DB) {
	t.Helper()
	db := b.Open(t)
	for _, q := range fixture {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("load fixture: %v\n%s", err, q)
		}
	}
	// The embedded engine keeps book_detail by no triggers (Seed rebuilds it).
	if err := repository.RebuildBookDetail(testContext(t), db.DB); err != nil {
		t.Fatal(err)
	}
	return repository.NewCatalog(db, repository.CatalogOptions{}), db
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func date(s string) sql.NullTime {
	if s == "" {
		return sql.NullTime{}
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return sql.NullTime{Time: d, Valid: true}
}

func sameDate(a, b sql.NullTime) bool {
	return a.Valid == b.Valid && (!a.Valid || a.Time.Equal(b.Time))
}

func TestCatalogCountsFixture(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, _ := openFixture(t, b)
			got, err := catalog.Counts(testContext(t))
			if err != nil {
				t.Fatalf("Counts: %v", err)
			}
			want := repository.Counts{Books: 7, Copies: 4, CopiesAvailable: 1, Authors: 5, Genres: 3}
			if got != want {
				t.Errorf("Counts = %+v, want %+v", got, want)
			}
			if err := catalog.Ping(testContext(t)); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

func TestCatalogBooksPages(t *testing.T) {
	tests := []struct {
		name          string
		limit, offset int
		wantIDs       []int64
	}{
		{"first page", 3, 0, []int64{6, 2, 5}},
		{"second page", 3, 3, []int64{4, 7, 1}},
		{"last partial page", 3, 6, []int64{3}},
		{"past the end", 10, 7, []int64{}},
		{"all", 100, 0, []int64{6, 2, 5, 4, 7, 1, 3}},
		{"zero limit", 0, 0, []int64{}},
	}
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, _ := openFixture(t, b)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					books, err := catalog.Books(testContext(t), tt.limit, tt.offset)
					if err != nil {
						t.Fatalf("Books(%d, %d): %v", tt.limit, tt.offset, err)
					}
					ids := []int64{}
					for _, bk := range books {
						ids = append(ids, bk.ID)
					}
					if !slices.Equal(ids, tt.wantIDs) {
						t.Errorf("Books(%d, %d) ids = %v, want %v", tt.limit, tt.offset, ids, tt.wantIDs)
					}
				})
			}
			t.Run("author columns", func(t *testing.T) {
				books, err := catalog.Books(testContext(t), 2, 0)
				if err != nil {
					t.Fatalf("Books: %v", err)
				}
				if len(books) != 2 {
					t.Fatalf("got %d books, want 2", len(books))
				}
				if anon := books[0]; anon.Title != "Anonymous Tales" || anon.AuthorID.Valid || anon.AuthorLastName.Valid {
					t.Errorf("book without author = %+v, want null author columns", anon)
				}
				want := repository.BookSummary{
					ID: 2, Title: "Emma",
					AuthorID:        sql.NullInt64{Int64: 2, Valid: true},
					AuthorFirstName: sql.NullString{String: "Jane", Valid: true},
					AuthorLastName:  sql.NullString{String: "Austen", Valid: true},
				}
				if books[1] != want {
					t.Errorf("books[1] = %+v, want %+v", books[1], want)
				}
			})
			t.Run("negative page", func(t *testing.T) {
				if _, err := catalog.Books(testContext(t), -1, 0); err == nil {
					t.Error("Books(-1, 0) succeeded, want an error")
				}
			})
		})
	}
}

func TestCatalogAuthorsPages(t *testing.T) {
	tests := []struct {
		name          string
		limit, offset int
		wantIDs       []int64
	}{
		{"first page", 2, 0, []int64{2, 5}},
		{"second page", 2, 2, []int64{4, 3}},
		{"last page", 2, 4, []int64{1}},
		{"past the end", 2, 6, []int64{}},
	}
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, _ := openFixture(t, b)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					authors, err := catalog.Authors(testContext(t), tt.limit, tt.offset)
					if err != nil {
						t.Fatalf("Authors(%d, %d): %v", tt.limit, tt.offset, err)
					}
					ids := []int64{}
					for _, a := range authors {
						ids = append(ids, a.ID)
					}
					if !slices.Equal(ids, tt.wantIDs) {
						t.Errorf("Authors(%d, %d) ids = %v, want %v", tt.limit, tt.offset, ids, tt.wantIDs)
					}
				})
			}
			t.Run("dates", func(t *testing.T) {
				authors, err := catalog.Authors(testContext(t), 10, 0)
				if err != nil {
					t.Fatalf("Authors: %v", err)
				}
				last := authors[len(authors)-1]
				if last.Name() != "Tolkien, John" ||
					!sameDate(last.DateOfBirth, date("1892-01-03")) || !sameDate(last.DateOfDeath, date("1973-09-02")) {
					t.Errorf("last author = %+v, want Tolkien, John, 1892-01-03 to 1973-09-02", last)
				}
			})
		})
	}
}

func TestCatalogBook(t *testing.T) {
	type copyWant struct {
		id, status, label, due string
	}
	tests := []struct {
		name        string
		id          int64
		wantErr     error
		title       string
		authorLast  string // "" for no author
		language    string // "" for none
		genres      []string
		copies      []copyWant
		wantSummary string
	}{
		{
			name: "with genres and copies", id: 7, title: "Pride and Prejudice", authorLast: "Austen",
			language: "English", genres: []string{"Classic", "Romance"}, wantSummary: "First impressions.",
			copies: []copyWant{
				{"c0000000-0000-4000-8000-000000000001", "a", "Available", ""},
				{"a0000000-0000-4000-8000-000000000003", "r", "Reserved", "2025-01-05"},
				{"b0000000-0000-4000-8000-000000000002", "o", "On loan", "2025-01-10"},
			},
		},
		{
			name: "one copy in maintenance", id: 1, title: "The Hobbit", authorLast: "Tolkien",
			language: "English", genres: []string{"Fantasy"}, wantSummary: "A hobbit goes there and back again.",
			copies: []copyWant{{"d0000000-0000-4000-8000-000000000004", "m", "Maintenance", ""}},
		},
		{
			name: "no author, language, genre or copy", id: 6, title: "Anonymous Tales",
			genres: []string{}, copies: []copyWant{}, wantSummary: "Nobody wrote these.",
		},
		{name: "unknown id", id: 999, wantErr: repository.ErrNotFound},
		{name: "zero id", id: 0, wantErr: repository.ErrNotFound},
	}
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, _ := openFixture(t, b)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					book, err := catalog.Book(testContext(t), tt.id)
					if tt.wantErr != nil {
						if !errors.Is(err, tt.wantErr) {
							t.Fatalf("Book(%d) error = %v, want %v", tt.id, err, tt.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Book(%d): %v", tt.id, err)
					}
					if book.ID != tt.id || book.Title != tt.title || book.Summary != tt.wantSummary || len(book.ISBN) != 13 {
						t.Errorf("book = %d %q %q %q, want %d %q %q and a 13-digit ISBN",
							book.ID, book.Title, book.Summary, book.ISBN, tt.id, tt.title, tt.wantSummary)
					}
					if got := book.AuthorLastName.String; got != tt.authorLast || book.AuthorID.Valid != (tt.authorLast != "") {
						t.Errorf("author = %+v %+v, want last name %q", book.AuthorID, book.AuthorLastName, tt.authorLast)
					}
					if got := book.Language.String; got != tt.language || book.Language.Valid != (tt.language != "") {
						t.Errorf("language = %+v, want %q", book.Language, tt.language)
					}
					if book.Genres == nil || !slices.Equal(book.Genres, tt.genres) {
						t.Errorf("genres = %#v, want %#v", book.Genres, tt.genres)
					}
					if book.Copies == nil || len(book.Copies) != len(tt.copies) {
						t.Fatalf("copies = %+v, want %d", book.Copies, len(tt.copies))
					}
					for i, want := range tt.copies {
						got := book.Copies[i]
						if got.ID != want.id || got.Status != want.status || got.StatusLabel() != want.label ||
							!sameDate(got.DueBack, date(want.due)) || got.Imprint == "" {
							t.Errorf("copy %d = %+v (%s), want %+v", i, got, got.StatusLabel(), want)
						}
					}
				})
			}
		})
	}
}

func TestCatalogAuthor(t *testing.T) {
	tests := []struct {
		name     string
		id       int64
		wantErr  error
		wantName string
		born     string
		bookIDs  []int64
	}{
		{name: "two books by title", id: 2, wantName: "Austen, Jane", born: "1775-12-16", bookIDs: []int64{2, 7}},
		{name: "namesake", id: 5, wantName: "Austen, Jane", bookIDs: []int64{5}},
		{name: "one book", id: 1, wantName: "Tolkien, John", born: "1892-01-03", bookIDs: []int64{1}},
		{name: "unknown id", id: 999, wantErr: repository.ErrNotFound},
	}
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, _ := openFixture(t, b)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					a, err := catalog.Author(testContext(t), tt.id)
					if tt.wantErr != nil {
						if !errors.Is(err, tt.wantErr) {
							t.Fatalf("Author(%d) error = %v, want %v", tt.id, err, tt.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Author(%d): %v", tt.id, err)
					}
					if a.ID != tt.id || a.Name() != tt.wantName || !sameDate(a.DateOfBirth, date(tt.born)) {
						t.Errorf("author = %+v, want %d %q born %q", a.Author, tt.id, tt.wantName, tt.born)
					}
					ids := []int64{}
					for _, bk := range a.Books {
						ids = append(ids, bk.ID)
						if bk.AuthorID.Int64 != tt.id || bk.AuthorLastName.String != a.LastName {
							t.Errorf("book %d author = %+v %+v, want %d %q", bk.ID, bk.AuthorID, bk.AuthorLastName, tt.id, a.LastName)
						}
					}
					if !slices.Equal(ids, tt.bookIDs) {
						t.Errorf("books = %v, want %v", ids, tt.bookIDs)
					}
				})
			}
		})
	}
}

func TestAuthorName(t *testing.T) {
	tests := []struct {
		first, last, want string
	}{
		{"Jane", "Austen", "Austen, Jane"},
		{"", "Homer", "Homer"},
		{"Voltaire", "", "Voltaire"},
	}
	for _, tt := range tests {
		if got := (repository.Author{FirstName: tt.first, LastName: tt.last}).Name(); got != tt.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tt.first, tt.last, got, tt.want)
		}
	}
}

func TestCopyStatusLabel(t *testing.T) {
	tests := []struct{ status, want string }{
		{"m", "Maintenance"}, {"o", "On loan"}, {"a", "Available"}, {"r", "Reserved"}, {"x", "Unknown"},
	}
	for _, tt := range tests {
		if got := (repository.Copy{Status: tt.status}).StatusLabel(); got != tt.want {
			t.Errorf("StatusLabel(%q) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

// TestCatalogPagesFromMarks checks every page of a seeded catalog, read by
// seeking from the lists' marks, against the same page read with a plain
// OFFSET, and a book's twelve copies, read in the one-statement UNION,
// against a plain query.
func TestCatalogPagesFromMarks(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := b.Open(t)
			ctx := testContext(t)
			if _, err := repository.Seed(ctx, db, repository.SeedOptions{Authors: 120, Books: 260, CopiesPerBook: 12, Seed: 3}); err != nil {
				t.Fatalf("seed: %v", err)
			}
			catalog := repository.NewCatalog(db, repository.CatalogOptions{ListMarksTTL: time.Hour})
			lists := []struct {
				name, ref string
				page      func(limit, offset int) ([]int64, error)
				total     int
			}{
				{"books", `SELECT id FROM book ORDER BY title, id LIMIT ? OFFSET ?`, func(limit, offset int) ([]int64, error) {
					books, err := catalog.Books(ctx, limit, offset)
					ids := make([]int64, len(books))
					for i, bk := range books {
						ids[i] = bk.ID
					}
					return ids, err
				}, 260},
				{"authors", `SELECT id FROM author ORDER BY last_name, first_name, id LIMIT ? OFFSET ?`, func(limit, offset int) ([]int64, error) {
					authors, err := catalog.Authors(ctx, limit, offset)
					ids := make([]int64, len(authors))
					for i, a := range authors {
						ids[i] = a.ID
					}
					return ids, err
				}, 120},
			}
			for _, l := range lists {
				for _, size := range []int{10, 25, 50} {
					for offset := 0; offset <= l.total; offset += size {
						got, err := l.page(size, offset)
						if err != nil {
							t.Fatalf("%s(%d, %d): %v", l.name, size, offset, err)
						}
						want := []int64{}
						if err := db.SelectContext(ctx, &want, l.ref, size, offset); err != nil {
							t.Fatalf("reference %s page: %v", l.name, err)
						}
						if !slices.Equal(got, want) {
							t.Fatalf("%s(%d, %d) = %v, want %v", l.name, size, offset, got, want)
						}
					}
				}
			}

			book, err := catalog.Book(ctx, 17)
			if err != nil {
				t.Fatalf("Book(17): %v", err)
			}
			var want []string
			if err := db.SelectContext(ctx, &want, `SELECT id FROM book_instance WHERE book_id = 17 ORDER BY due_back, id`); err != nil {
				t.Fatalf("reference copies: %v", err)
			}
			var got []string
			for _, c := range book.Copies {
				got = append(got, c.ID)
			}
			if len(want) != 12 || !slices.Equal(got, want) {
				t.Errorf("copies of book 17 = %v, want %v (12)", got, want)
			}
		})
	}
}

// TestZeroCountsMaxAgeRecountsEveryRead: a Catalog keeps no default of its
// own (config has the service's); told nothing, it reuses no count.
func TestZeroCountsMaxAgeRecountsEveryRead(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			catalog, db := openFixture(t, b)
			ctx := testContext(t)
			if n, err := catalog.Counts(ctx); err != nil || n.Books != 7 {
				t.Fatalf("first count: %+v, %v; want 7 books", n, err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO book (id, title, summary, isbn) VALUES (8, 'New', 'New.', '9780000000088')`); err != nil {
				t.Fatal(err)
			}
			if n, err := catalog.Counts(ctx); err != nil || n.Books != 8 {
				t.Errorf("count right after a new book: %+v, %v; want 8 books", n, err)
			}
		})
	}
}

// TestCountsAreSharedByReplicas runs two catalogs on one database, as two
// replicas: a fresh row is read, not recounted; an old one is recounted by
// the replica that claims it, while a claim held by another replica makes
// the rest read the old row.
func TestCountsAreSharedByReplicas(t *testing.T) {
	for _, b := range repotest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			_, db := openFixture(t, b)
			ctx := testContext(t)
			books := func(c *repository.Catalog) int64 {
				t.Helper()
				n, err := c.Counts(ctx)
				if err != nil {
					t.Fatalf("Counts: %v", err)
				}
				return n.Books
			}
			exec := func(q string) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			first := repository.NewCatalog(db, repository.CatalogOptions{CountsMaxAge: time.Hour})
			second := repository.NewCatalog(db, repository.CatalogOptions{CountsMaxAge: time.Hour})
			if n := books(first); n != 7 {
				t.Fatalf("first count: %d books, want 7", n)
			}
			exec(`INSERT INTO book (id, title, summary, isbn) VALUES (8, 'New', 'New.', '9780000000088')`)
			if n := books(second); n != 7 {
				t.Errorf("second replica, row an hour fresh: %d books, want the shared 7", n)
			}

			exec(`UPDATE catalog_counts SET counted_at = '2000-01-01 00:00:00', claimed_until = DATE_ADD(NOW(6), INTERVAL 1 HOUR)`)
			if n := books(second); n != 7 {
				t.Errorf("row claimed by another replica: %d books, want the old 7", n)
			}
			exec(`UPDATE catalog_counts SET claimed_until = DATE_SUB(NOW(6), INTERVAL 1 SECOND)`)
			if n := books(second); n != 8 {
				t.Errorf("old row, claim lapsed: %d books, want a recount of 8", n)
			}
			if n := books(first); n != 8 {
				t.Errorf("first replica after the recount: %d books, want 8", n)
			}

			exec(`DELETE FROM catalog_counts`)
			if n := books(first); n != 8 {
				t.Errorf("row deleted: %d books, want a recount of 8", n)
			}
		})
	}
}
