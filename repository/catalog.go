// Package repository owns the LocalLibrary catalog in MySQL/MariaDB: the row
// types, the read queries the pages need, the embedded schema migrations and
// the demo-data seed. It knows nothing of HTTP.
package repository

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// ErrNotFound is returned, wrapped, when a requested row does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotEmpty is returned, wrapped, by Seed when the catalog already has rows.
var ErrNotEmpty = errors.New("catalog is not empty")

// Counts are the figures shown on the home page.
type Counts struct {
	Books           int64 `db:"books"`
	Copies          int64 `db:"copies"`
	CopiesAvailable int64 `db:"copies_available"`
	Authors         int64 `db:"authors"`
	Genres          int64 `db:"genres"`
}

// Author is a row of the author table.
type Author struct {
	ID          int64        `db:"id"`
	FirstName   string       `db:"first_name"`
	LastName    string       `db:"last_name"`
	DateOfBirth sql.NullTime `db:"date_of_birth"`
	DateOfDeath sql.NullTime `db:"date_of_death"`
}

// Name is the author as the tutorial lists them: "Last, First".
func (a Author) Name() string {
	switch {
	case a.FirstName == "":
		return a.LastName
	case a.LastName == "":
		return a.FirstName
	}
	return a.LastName + ", " + a.FirstName
}

// BookSummary is a row of the book list and of an author's books. The author
// columns are null when the book has no author.
type BookSummary struct {
	ID              int64          `db:"id"`
	Title           string         `db:"title"`
	AuthorID        sql.NullInt64  `db:"author_id"`
	AuthorFirstName sql.NullString `db:"author_first_name"`
	AuthorLastName  sql.NullString `db:"author_last_name"`
}

// Copy is a row of the book_instance table: one physical copy of a book.
type Copy struct {
	ID      string       `db:"id"`
	Imprint string       `db:"imprint"`
	DueBack sql.NullTime `db:"due_back"`
	Status  string       `db:"status"`
}

// Copy statuses, as stored in book_instance.status.
const (
	StatusMaintenance = "m"
	StatusOnLoan      = "o"
	StatusAvailable   = "a"
	StatusReserved    = "r"
)

// StatusLabel is the status as the site shows it.
func (c Copy) StatusLabel() string {
	switch c.Status {
	case StatusMaintenance:
		return "Maintenance"
	case StatusOnLoan:
		return "On loan"
	case StatusAvailable:
		return "Available"
	case StatusReserved:
		return "Reserved"
	}
	return "Unknown"
}

// Book is a book with everything its detail page shows.
type Book struct {
	ID              int64          `db:"id"`
	Title           string         `db:"title"`
	Summary         string         `db:"summary"`
	ISBN            string         `db:"isbn"`
	AuthorID        sql.NullInt64  `db:"author_id"`
	AuthorFirstName sql.NullString `db:"author_first_name"`
	AuthorLastName  sql.NullString `db:"author_last_name"`
	Language        sql.NullString `db:"language"`
	Genres          []string       `db:"-"` // sorted by name
	Copies          []Copy         `db:"-"` // by due date, then id
}

// AuthorDetail is an author with their books, ordered by title.
type AuthorDetail struct {
	Author
	Books []BookSummary `db:"-"`
}

// Catalog runs the catalog's read queries.
type Catalog struct {
	db *sqlx.DB
}

// NewCatalog returns a Catalog on db.
func NewCatalog(db *sqlx.DB) *Catalog {
	return &Catalog{db: db}
}

// Ping checks that the database answers and has the catalog's tables: a
// replica started before the migrations ran is not ready for traffic.
func (c *Catalog) Ping(ctx context.Context) error {
	if _, err := c.db.ExecContext(ctx, "SELECT 1 FROM book WHERE 1 = 0"); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Counts returns the home page figures in one round trip. The copies are
// counted per status in one scan of book_instance_status_idx, which gives
// both the total and the available count: at a million copies, half the
// work of counting them twice.
func (c *Catalog) Counts(ctx context.Context) (Counts, error) {
	const q = `SELECT 'books' AS what, COUNT(*) AS n FROM book
UNION ALL SELECT 'authors', COUNT(*) FROM author
UNION ALL SELECT 'genres', COUNT(*) FROM genre
UNION ALL SELECT CONCAT('copies:', status), COUNT(*) FROM book_instance GROUP BY status`
	var rows []struct {
		What string `db:"what"`
		N    int64  `db:"n"`
	}
	if err := c.db.SelectContext(ctx, &rows, q); err != nil {
		return Counts{}, fmt.Errorf("count catalog: %w", err)
	}
	var n Counts
	for _, r := range rows {
		switch r.What {
		case "books":
			n.Books = r.N
		case "authors":
			n.Authors = r.N
		case "genres":
			n.Genres = r.N
		case "copies:" + StatusAvailable:
			n.CopiesAvailable = r.N
			n.Copies += r.N
		default: // copies:m, copies:o, copies:r
			n.Copies += r.N
		}
	}
	return n, nil
}

// Books returns a page of the book list, ordered by title then id.
func (c *Catalog) Books(ctx context.Context, limit, offset int) ([]BookSummary, error) {
	// The page's ids come from the (title, id) index alone, then only those
	// ten rows are joined: OFFSET then walks the index instead of sorting
	// the whole table, which took seconds at 100,000 books.
	const q = `SELECT b.id, b.title, b.author_id,
	a.first_name AS author_first_name, a.last_name AS author_last_name
FROM (SELECT id FROM book ORDER BY title, id LIMIT ? OFFSET ?) AS page
JOIN book b ON b.id = page.id
LEFT JOIN author a ON a.id = b.author_id
ORDER BY b.title, b.id`
	if err := checkPage(limit, offset); err != nil {
		return nil, fmt.Errorf("list books: %w", err)
	}
	books := []BookSummary{}
	if err := c.db.SelectContext(ctx, &books, q, limit, offset); err != nil {
		return nil, fmt.Errorf("list books (limit %d, offset %d): %w", limit, offset, err)
	}
	return books, nil
}

// Authors returns a page of the author list, ordered by name then id.
func (c *Catalog) Authors(ctx context.Context, limit, offset int) ([]Author, error) {
	// As for books: the page's ids from the name index, then their rows.
	const q = `SELECT a.id, a.first_name, a.last_name, a.date_of_birth, a.date_of_death
FROM (SELECT id FROM author ORDER BY last_name, first_name, id LIMIT ? OFFSET ?) AS page
JOIN author a ON a.id = page.id
ORDER BY a.last_name, a.first_name, a.id`
	if err := checkPage(limit, offset); err != nil {
		return nil, fmt.Errorf("list authors: %w", err)
	}
	authors := []Author{}
	if err := c.db.SelectContext(ctx, &authors, q, limit, offset); err != nil {
		return nil, fmt.Errorf("list authors (limit %d, offset %d): %w", limit, offset, err)
	}
	return authors, nil
}

// Book returns the book with the given id, its genres and copies, or
// ErrNotFound.
func (c *Catalog) Book(ctx context.Context, id int64) (Book, error) {
	const q = `SELECT b.id, b.title, b.summary, b.isbn, b.author_id,
	a.first_name AS author_first_name, a.last_name AS author_last_name,
	l.name AS language
FROM book b
LEFT JOIN author a ON a.id = b.author_id
LEFT JOIN language l ON l.id = b.language_id
WHERE b.id = ?`
	// The three queries share one connection: taken from the pool once,
	// a busy pool makes the page wait once, not three times.
	conn, err := c.db.Connx(ctx)
	if err != nil {
		return Book{}, fmt.Errorf("get book %d: %w", id, err)
	}
	defer conn.Close()
	var b Book
	switch err := conn.GetContext(ctx, &b, q, id); {
	case errors.Is(err, sql.ErrNoRows):
		return Book{}, fmt.Errorf("book %d: %w", id, ErrNotFound)
	case err != nil:
		return Book{}, fmt.Errorf("get book %d: %w", id, err)
	}
	if b.Genres, err = bookGenres(ctx, conn, id); err != nil {
		return Book{}, err
	}
	if b.Copies, err = bookCopies(ctx, conn, id); err != nil {
		return Book{}, err
	}
	return b, nil
}

func bookGenres(ctx context.Context, db sqlx.QueryerContext, bookID int64) ([]string, error) {
	const q = `SELECT g.name
FROM book_genre bg
JOIN genre g ON g.id = bg.genre_id
WHERE bg.book_id = ?
ORDER BY g.name`
	genres := []string{}
	if err := sqlx.SelectContext(ctx, db, &genres, q, bookID); err != nil {
		return nil, fmt.Errorf("get genres of book %d: %w", bookID, err)
	}
	return genres, nil
}

func bookCopies(ctx context.Context, db sqlx.QueryerContext, bookID int64) ([]Copy, error) {
	const q = `SELECT id, imprint, due_back, status
FROM book_instance
WHERE book_id = ?
ORDER BY due_back, id`
	copies := []Copy{}
	if err := sqlx.SelectContext(ctx, db, &copies, q, bookID); err != nil {
		return nil, fmt.Errorf("get copies of book %d: %w", bookID, err)
	}
	return copies, nil
}

// Author returns the author with the given id and their books, or
// ErrNotFound.
func (c *Catalog) Author(ctx context.Context, id int64) (AuthorDetail, error) {
	const q = `SELECT id, first_name, last_name, date_of_birth, date_of_death
FROM author
WHERE id = ?`
	var a AuthorDetail
	switch err := c.db.GetContext(ctx, &a.Author, q, id); {
	case errors.Is(err, sql.ErrNoRows):
		return AuthorDetail{}, fmt.Errorf("author %d: %w", id, ErrNotFound)
	case err != nil:
		return AuthorDetail{}, fmt.Errorf("get author %d: %w", id, err)
	}
	var err error
	if a.Books, err = c.authorBooks(ctx, a.Author); err != nil {
		return AuthorDetail{}, err
	}
	return a, nil
}

func (c *Catalog) authorBooks(ctx context.Context, a Author) ([]BookSummary, error) {
	const q = `SELECT id, title, author_id
FROM book
WHERE author_id = ?
ORDER BY title, id`
	books := []BookSummary{}
	if err := c.db.SelectContext(ctx, &books, q, a.ID); err != nil {
		return nil, fmt.Errorf("get books of author %d: %w", a.ID, err)
	}
	// The author is known: fill the name in rather than join it per row.
	for i := range books {
		books[i].AuthorFirstName = sql.NullString{String: a.FirstName, Valid: true}
		books[i].AuthorLastName = sql.NullString{String: a.LastName, Valid: true}
	}
	return books, nil
}

// checkPage rejects a page that the database would reject less clearly.
func checkPage(limit, offset int) error {
	if limit < 0 || offset < 0 {
		return fmt.Errorf("invalid page: limit %d, offset %d", limit, offset)
	}
	return nil
}
