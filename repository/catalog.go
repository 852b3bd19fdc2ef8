// Package repository owns the LocalLibrary catalog in MySQL/MariaDB: the row
// types, the read queries the pages need, the embedded schema migrations and
// the demo-data seed. It knows nothing of HTTP.
package repository

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

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

// Copy is a row of the book_instance table: one physical copy of a book
// (read from book_detail.copies, see decodeCopies).
type Copy struct {
	ID      string
	Imprint string
	DueBack sql.NullTime
	Status  string
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

// Book is a book with everything its detail page shows (scanned column
// by column in Catalog.Book).
type Book struct {
	ID              int64
	Title           string
	Summary         string
	ISBN            string
	AuthorID        sql.NullInt64
	AuthorFirstName sql.NullString
	AuthorLastName  sql.NullString
	Language        sql.NullString
	Genres          []string // by name, ignoring case
	Copies          []Copy   // by due date, then id
}

// AuthorDetail is an author with their books, ordered by title.
type AuthorDetail struct {
	Author
	Books []BookSummary `db:"-"`
}

// Catalog runs the catalog's read queries.
type Catalog struct {
	db           *sqlx.DB
	countsMaxAge time.Duration
	bookMarks    *listMarks
	authorMarks  *listMarks
	prepared     *statements
}

// CatalogOptions bound how old what a Catalog shares may be. The service's
// values come from config; zero reuses nothing.
type CatalogOptions struct {
	// CountsMaxAge is the oldest the shared counts row is read without a
	// recount; 0 recounts on every read (unless another replica is
	// counting).
	CountsMaxAge time.Duration
	// ListMarksTTL is how long a list's marks are used before they are read
	// again: a new or removed row moves the pages after it within that
	// time. 0 reads them again, in the background, after every use.
	ListMarksTTL time.Duration
}

// NewCatalog returns a Catalog on db.
func NewCatalog(db *sqlx.DB, opt CatalogOptions) *Catalog {
	return &Catalog{
		db:           db,
		countsMaxAge: opt.CountsMaxAge,
		prepared:     &statements{db: db, byQuery: map[string]*sqlx.Stmt{}},
		bookMarks: &listMarks{db: db, ttl: opt.ListMarksTTL,
			query: `SELECT title AS k1, '' AS k2, id FROM book ORDER BY title, id`},
		authorMarks: &listMarks{db: db, ttl: opt.ListMarksTTL,
			query: `SELECT last_name AS k1, first_name AS k2, id FROM author ORDER BY last_name, first_name, id`},
	}
}

// Ping checks that the database answers and is migrated to the schema this
// build reads: a replica started before the migrations ran, or while they
// failed, is not ready for traffic.
func (c *Catalog) Ping(ctx context.Context) error {
	const q = `SELECT is_applied FROM goose_db_version WHERE version_id = ? ORDER BY id DESC LIMIT 1`
	var applied bool
	switch err := c.db.QueryRowContext(ctx, q, schemaVersion).Scan(&applied); {
	case errors.Is(err, sql.ErrNoRows) || err == nil && !applied:
		return fmt.Errorf("ping database: schema version %d is not applied (locallibrary migrate)", schemaVersion)
	case err != nil:
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// countsClaim is how long a replica's claim to recount lasts: should it
// die while counting, another takes over after this.
const countsClaim = 30 * time.Second

// Counts returns the home page figures, counted at most the catalog's
// counts age ago (plus the time one count takes). Every replica reads them
// from one row by its primary key; when the row is too old, the one
// replica that claims it recounts, and the others keep reading the old row
// meanwhile. So MySQL counts the catalog once per interval for the whole
// fleet, however many replicas there are. Ages are measured on the
// database's clock, so the replicas' clocks do not matter, and from when a
// count was stored: a lone replica that rereads the row every maxAge then
// recounts as often as a fleet does, however long a count takes.
func (c *Catalog) Counts(ctx context.Context) (Counts, error) {
	const read = `SELECT books, copies, copies_available, authors, genres,
	TIMESTAMPDIFF(MICROSECOND, counted_at, NOW(6)) AS age_us
FROM catalog_counts WHERE id = 1`
	const claim = `UPDATE catalog_counts SET claimed_until = DATE_ADD(NOW(6), INTERVAL ? SECOND)
WHERE id = 1 AND (claimed_until IS NULL OR claimed_until < NOW(6))
	AND counted_at < DATE_SUB(NOW(6), INTERVAL ? MICROSECOND)`
	const store = `UPDATE catalog_counts SET books = ?, copies = ?, copies_available = ?, authors = ?, genres = ?,
	counted_at = NOW(6), claimed_until = NULL
WHERE id = 1`
	const insert = `INSERT IGNORE INTO catalog_counts (id, books, authors, genres, copies, copies_available, counted_at)
VALUES (1, 0, 0, 0, 0, 0, '2000-01-01 00:00:00')`
	var row struct {
		Counts
		AgeMicros int64 `db:"age_us"`
	}
	err := c.db.GetContext(ctx, &row, read)
	if errors.Is(err, sql.ErrNoRows) { // the row was deleted: put it back, counted long ago
		if _, err := c.db.ExecContext(ctx, insert); err != nil {
			return Counts{}, fmt.Errorf("read catalog counts: %w", err)
		}
		err = c.db.GetContext(ctx, &row, read)
	}
	if err != nil {
		return Counts{}, fmt.Errorf("read catalog counts: %w", err)
	}
	maxAge := c.countsMaxAge.Microseconds()
	if row.AgeMicros < maxAge {
		return row.Counts, nil
	}
	res, err := c.db.ExecContext(ctx, claim, int(countsClaim/time.Second), maxAge)
	if err != nil {
		return Counts{}, fmt.Errorf("claim catalog counts: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return row.Counts, nil // another replica is counting (or just has)
	}
	fresh, err := c.count(ctx)
	if err != nil {
		return Counts{}, err
	}
	if _, err := c.db.ExecContext(ctx, store, fresh.Books, fresh.Copies, fresh.CopiesAvailable,
		fresh.Authors, fresh.Genres); err != nil {
		return Counts{}, fmt.Errorf("store catalog counts: %w", err)
	}
	return fresh, nil
}

// count counts the catalog in one round trip. The copies are counted per
// status in one scan of book_instance_status_idx, which gives both the
// total and the available count.
func (c *Catalog) count(ctx context.Context) (Counts, error) {
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
	// The page's books come from the (title, id, author_id) index alone,
	// in its order, and only their authors are joined (no temporary table,
	// no sort). The index is entered at the mark nearest the page (see
	// listMarks), so a deep page walks as few entries as the first.
	const columns = `SELECT b.id, b.title, b.author_id,
	a.first_name AS author_first_name, a.last_name AS author_last_name
FROM book b FORCE INDEX (book_title_author_idx)
LEFT JOIN author a ON a.id = b.author_id `
	const order = ` ORDER BY b.title, b.id LIMIT ? OFFSET ?`
	// The OR form, not (title, id) >= (?, ?): MariaDB turns only the OR
	// into a range of the index; the row comparison scans it from the start.
	const seek = `WHERE b.title > ? OR (b.title = ? AND b.id >= ?)`
	if err := checkPage(limit, offset); err != nil {
		return nil, fmt.Errorf("list books: %w", err)
	}
	q, args := columns+order, []any{limit, offset}
	if from, skip, ok := c.bookMarks.seek(ctx, offset); ok {
		q, args = columns+seek+order, []any{from.First, from.First, from.ID, limit, skip}
	}
	books := []BookSummary{}
	if err := c.prepared.selectContext(ctx, &books, q, args...); err != nil {
		return nil, fmt.Errorf("list books (limit %d, offset %d): %w", limit, offset, err)
	}
	return books, nil
}

// Authors returns a page of the author list, ordered by name then id.
func (c *Catalog) Authors(ctx context.Context, limit, offset int) ([]Author, error) {
	// As for books: the name index, entered at a mark, in its order; each
	// author's row by its id.
	const columns = `SELECT a.id, a.first_name, a.last_name, a.date_of_birth, a.date_of_death
FROM author a FORCE INDEX (author_name_idx) `
	const order = ` ORDER BY a.last_name, a.first_name, a.id LIMIT ? OFFSET ?`
	const seek = `WHERE a.last_name > ? OR (a.last_name = ? AND (a.first_name > ? OR (a.first_name = ? AND a.id >= ?)))`
	if err := checkPage(limit, offset); err != nil {
		return nil, fmt.Errorf("list authors: %w", err)
	}
	q, args := columns+order, []any{limit, offset}
	if from, skip, ok := c.authorMarks.seek(ctx, offset); ok {
		q, args = columns+seek+order, []any{from.First, from.First, from.Second, from.Second, from.ID, limit, skip}
	}
	authors := []Author{}
	if err := c.prepared.selectContext(ctx, &authors, q, args...); err != nil {
		return nil, fmt.Errorf("list authors (limit %d, offset %d): %w", limit, offset, err)
	}
	return authors, nil
}

// Book returns the book with the given id, its genres and copies, or
// ErrNotFound: one row read by primary key from book, its book_detail
// (genres and copies kept there by triggers, migration 00004), its author
// and its language.
func (c *Catalog) Book(ctx context.Context, id int64) (Book, error) {
	const q = `SELECT b.title, b.summary, b.isbn, b.author_id, a.first_name, a.last_name, l.name, d.genres, d.copies
FROM book b
LEFT JOIN book_detail d ON d.book_id = b.id
LEFT JOIN author a ON a.id = b.author_id
LEFT JOIN language l ON l.id = b.language_id
WHERE b.id = ?`
	stmt, err := c.prepared.get(ctx, q)
	if err != nil {
		return Book{}, fmt.Errorf("get book %d: %w", id, err)
	}
	b := Book{ID: id}
	var genres, copies []byte
	err = stmt.QueryRowContext(ctx, id).Scan(&b.Title, &b.Summary, &b.ISBN, &b.AuthorID,
		&b.AuthorFirstName, &b.AuthorLastName, &b.Language, &genres, &copies)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Book{}, fmt.Errorf("book %d: %w", id, ErrNotFound)
	case err != nil:
		return Book{}, fmt.Errorf("get book %d: %w", id, err)
	case genres == nil || copies == nil:
		return Book{}, fmt.Errorf("book %d has no book_detail row: rows loaded with the triggers off want `locallibrary rebuild`", id)
	}
	if b.Genres, err = decodeGenres(genres); err != nil {
		return Book{}, fmt.Errorf("genres of book %d: %w", id, err)
	}
	if b.Copies, err = decodeCopies(copies); err != nil {
		return Book{}, fmt.Errorf("copies of book %d: %w", id, err)
	}
	return b, nil
}

// decodeGenres reads book_detail.genres, a JSON array of names, in the
// order the page lists them: by name, ignoring case.
func decodeGenres(data []byte) ([]string, error) {
	genres := []string{}
	if err := json.Unmarshal(data, &genres); err != nil {
		return nil, err
	}
	slices.SortFunc(genres, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a), strings.ToLower(b)), cmp.Compare(a, b))
	})
	return genres, nil
}

// decodeCopies reads book_detail.copies, a JSON array of [id, imprint,
// status, due back or null], in the order the page lists them: by due
// date, the copies with none first, then by id.
func decodeCopies(data []byte) ([]Copy, error) {
	var rows [][4]string // a JSON null leaves "": no due date
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, err
	}
	copies := make([]Copy, len(rows))
	for i, r := range rows {
		copies[i] = Copy{ID: r[0], Imprint: r[1], Status: r[2]}
		if r[3] != "" {
			due, err := time.Parse(time.DateOnly, r[3])
			if err != nil {
				return nil, fmt.Errorf("due date of copy %s: %w", r[0], err)
			}
			copies[i].DueBack = sql.NullTime{Time: due, Valid: true}
		}
	}
	slices.SortFunc(copies, func(a, b Copy) int {
		return cmp.Or(cmp.Compare(dueKey(a.DueBack), dueKey(b.DueBack)), cmp.Compare(a.ID, b.ID))
	})
	return copies, nil
}

// dueKey orders due dates with "none" first.
func dueKey(t sql.NullTime) int64 {
	if !t.Valid {
		return math.MinInt64
	}
	return t.Time.Unix()
}

// statements holds the catalog's page queries prepared, by their text:
// MariaDB then skips parsing them for every page, which was a fifth to a
// quarter of its CPU per uncached page. A statement is prepared on first
// use, and again after a failed attempt (MySQL may be down when the
// service starts); database/sql prepares it on each pooled connection as
// the connection first runs it. No lock is held while preparing, so an
// unanswering server holds each request only to its own deadline.
type statements struct {
	db      *sqlx.DB
	mu      sync.Mutex
	byQuery map[string]*sqlx.Stmt
}

func (s *statements) selectContext(ctx context.Context, dest any, query string, args ...any) error {
	stmt, err := s.get(ctx, query)
	if err != nil {
		return err
	}
	return stmt.SelectContext(ctx, dest, args...)
}

func (s *statements) getContext(ctx context.Context, dest any, query string, args ...any) error {
	stmt, err := s.get(ctx, query)
	if err != nil {
		return err
	}
	return stmt.GetContext(ctx, dest, args...)
}

func (s *statements) get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	s.mu.Lock()
	stmt := s.byQuery[query]
	s.mu.Unlock()
	if stmt == nil {
		prepared, err := s.db.PreparexContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
		s.mu.Lock()
		if stmt = s.byQuery[query]; stmt == nil { // else another request prepared it meanwhile
			stmt = prepared
			s.byQuery[query] = stmt
		}
		s.mu.Unlock()
		if stmt != prepared {
			prepared.Close()
		}
	}
	return stmt, nil
}

// Author returns the author with the given id and their books, or
// ErrNotFound.
func (c *Catalog) Author(ctx context.Context, id int64) (AuthorDetail, error) {
	const q = `SELECT id, first_name, last_name, date_of_birth, date_of_death
FROM author
WHERE id = ?`
	var a AuthorDetail
	switch err := c.prepared.getContext(ctx, &a.Author, q, id); {
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
	if err := c.prepared.selectContext(ctx, &books, q, a.ID); err != nil {
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
