package repository

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// SeedOptions says how big a catalog Seed makes. The same options give the
// same rows, ids and UUIDs included.
type SeedOptions struct {
	Authors       int
	Books         int
	CopiesPerBook int
	Seed          int64
}

// SeedResult counts the rows Seed inserted.
type SeedResult struct {
	Authors, Books, Copies, Genres, Languages int64
	Took                                      time.Duration
}

const (
	// seedMaxBooks keeps ISBNs unique: they are a bijection of the book
	// number on nine digits.
	seedMaxBooks = 100_000_000
	// seedBatchRows is the rows per INSERT statement; with at most six
	// columns that stays under MySQL's 65,535 placeholders per statement.
	seedBatchRows = 5000
	// seedTxRows is the rows per transaction: few commits, small undo logs.
	seedTxRows = 50_000
)

// seedToday is the fixed "today" that due dates are drawn around, so that a
// seed does not depend on the day it runs.
var seedToday = time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC)

// Seed fills an empty catalog with plausible, deterministic demo data: the
// genres and languages, opt.Authors authors, opt.Books books with one to three
// genres each, and opt.CopiesPerBook copies of every book. It refuses a
// catalog that has any row with ErrNotEmpty, changing nothing. If it fails
// part way, the rows already committed stay.
func Seed(ctx context.Context, db *sqlx.DB, opt SeedOptions) (SeedResult, error) {
	start := time.Now()
	switch {
	case opt.Authors < 0 || opt.Books < 0 || opt.CopiesPerBook < 0:
		return SeedResult{}, fmt.Errorf("seed: negative size in %+v", opt)
	case opt.Books > seedMaxBooks:
		return SeedResult{}, fmt.Errorf("seed: %d books, at most %d", opt.Books, seedMaxBooks)
	}
	if err := checkEmpty(ctx, db); err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}

	g := newSeedGen(opt)
	authors := g.authors()
	books, bookGenres := g.books()
	copies := g.copies()

	// Parents first, children after, so the rows are consistent at every
	// commit. Tables are filled in parallel, but each by one connection:
	// go-mysql-server's in-memory tables lose rows when two transactions
	// write one table.
	err := runAll(ctx,
		func(ctx context.Context) error { return insertNames(ctx, db, "genre", seedGenres) },
		func(ctx context.Context) error { return insertNames(ctx, db, "language", seedLanguages) },
		func(ctx context.Context) error { return insertAuthors(ctx, db, authors) },
	)
	if err == nil {
		err = insertBooks(ctx, db, books)
	}
	if err == nil {
		err = runAll(ctx,
			func(ctx context.Context) error { return insertBookGenres(ctx, db, bookGenres) },
			func(ctx context.Context) error { return insertCopies(ctx, db, copies) },
		)
	}
	// The triggers were off on the seed's connections: book_detail is built
	// now, for what was loaded even if the seed stopped halfway, so that
	// every book there is has its page.
	if rebuildErr := RebuildBookDetail(ctx, db.DB); err == nil {
		err = rebuildErr
	}
	if err != nil {
		return SeedResult{}, fmt.Errorf("seed: %w", err)
	}
	return SeedResult{
		Authors:   int64(len(authors)),
		Books:     int64(len(books)),
		Copies:    int64(len(copies)),
		Genres:    int64(len(seedGenres)),
		Languages: int64(len(seedLanguages)),
		Took:      time.Since(start),
	}, nil
}

// checkEmpty returns ErrNotEmpty if any catalog table has a row.
func checkEmpty(ctx context.Context, db *sqlx.DB) error {
	const q = `SELECT
	(SELECT COUNT(*) FROM (SELECT 1 FROM author LIMIT 1) t) +
	(SELECT COUNT(*) FROM (SELECT 1 FROM book LIMIT 1) t) +
	(SELECT COUNT(*) FROM (SELECT 1 FROM book_instance LIMIT 1) t) +
	(SELECT COUNT(*) FROM (SELECT 1 FROM genre LIMIT 1) t) +
	(SELECT COUNT(*) FROM (SELECT 1 FROM language LIMIT 1) t)`
	var nonEmpty int64
	if err := db.GetContext(ctx, &nonEmpty, q); err != nil {
		return fmt.Errorf("check catalog is empty: %w", err)
	}
	if nonEmpty > 0 {
		return ErrNotEmpty
	}
	return nil
}

type seedAuthor struct {
	first, last  string
	born, died   string // YYYY-MM-DD, or "" for null
	bornY, diedY int
}

type seedBook struct {
	title, summary, isbn string
	author, language     int64 // 0 for null
}

type seedBookGenre struct{ book, genre int64 }

// seedCopy is compact: a million of them are held and sorted at once.
type seedCopy struct {
	id        [16]byte
	book      int64
	dueBack   int32 // days after seedToday; meaningful only when hasDue
	year      int16
	publisher uint8
	status    byte
	hasDue    bool
}

// seedGen draws the rows. Each table has its own PCG stream so that a change
// to one table's drawing leaves the others as they were.
type seedGen struct {
	opt                       SeedOptions
	authorRNG, bookRNG, cpRNG *rand.Rand
}

func newSeedGen(opt SeedOptions) *seedGen {
	s := uint64(opt.Seed)
	return &seedGen{
		opt:       opt,
		authorRNG: rand.New(rand.NewPCG(s, 0xa17e0a)),
		bookRNG:   rand.New(rand.NewPCG(s, 0xb00c)),
		cpRNG:     rand.New(rand.NewPCG(s, 0xc0b1e5)),
	}
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

func (g *seedGen) authors() []seedAuthor {
	r := g.authorRNG
	out := make([]seedAuthor, g.opt.Authors)
	for i := range out {
		a := seedAuthor{first: pick(r, seedFirstNames), last: pick(r, seedLastNames)}
		if r.IntN(100) < 93 {
			a.bornY = 1800 + r.IntN(196)
			a.born = seedDate(a.bornY, r)
			dies := 5
			switch {
			case a.bornY < 1925:
				dies = 100
			case a.bornY < 1960:
				dies = 45
			}
			if r.IntN(100) < dies {
				a.diedY = min(a.bornY+30+r.IntN(65), 2024)
				a.died = seedDate(a.diedY, r)
			}
		}
		out[i] = a
	}
	return out
}

func seedDate(year int, r *rand.Rand) string {
	return fmt.Sprintf("%04d-%02d-%02d", year, 1+r.IntN(12), 1+r.IntN(28))
}

func (g *seedGen) books() ([]seedBook, []seedBookGenre) {
	r := g.bookRNG
	books := make([]seedBook, g.opt.Books)
	genres := make([]seedBookGenre, 0, g.opt.Books*2)
	for i := range books {
		n := int64(i + 1)
		b := seedBook{title: seedTitle(r), summary: seedSummary(r), isbn: seedISBN(n)}
		if g.opt.Authors > 0 && r.IntN(100) < 98 {
			b.author = 1 + int64(r.IntN(g.opt.Authors))
		}
		if r.IntN(100) < 97 {
			b.language = 1 + int64(weighted(r, seedLanguageWeights))
		}
		books[i] = b
		// One to three distinct genres, in id order like the primary key.
		picked := r.Perm(len(seedGenres))[:1+r.IntN(3)]
		slices.Sort(picked)
		for _, gi := range picked {
			genres = append(genres, seedBookGenre{book: n, genre: int64(gi + 1)})
		}
	}
	return books, genres
}

func weighted(r *rand.Rand, weights []int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

func seedTitle(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return pick(r, seedTitleNouns) + " of " + pick(r, seedTitlePlaces)
	case 1:
		return "The " + pick(r, seedTitleNouns) + "'s " + pick(r, seedTitleNouns)
	case 2:
		return "The " + pick(r, seedTitleAdjectives) + " " + pick(r, seedTitleNouns) + " of " + pick(r, seedTitlePlaces)
	case 3:
		adj := pick(r, seedTitleAdjectives)
		if strings.ContainsRune("AEIOU", rune(adj[0])) {
			return "An " + adj + " " + pick(r, seedTitleNouns)
		}
		return "A " + adj + " " + pick(r, seedTitleNouns)
	}
	return "The " + pick(r, seedTitleAdjectives) + " " + pick(r, seedTitleNouns)
}

func seedSummary(r *rand.Rand) string {
	s := pick(r, seedSummaryOpenings) + " " + pick(r, seedSummarySubjects)
	if r.IntN(2) == 0 {
		s += " in " + pick(r, seedTitlePlaces)
	}
	return s + ". " + pick(r, seedSummaryClosings)
}

// seedISBN returns a valid ISBN-13 for book number n: 978, nine digits that
// are a bijection of n (so unique), and the check digit.
func seedISBN(n int64) string {
	const mod = 1_000_000_000
	body := (n*387_420_489 + 123_456_789) % mod // 3^18 is coprime with 10^9
	s := "978" + fmt.Sprintf("%09d", body)
	sum := 0
	for i, c := range s {
		d := int(c - '0')
		if i%2 == 1 {
			d *= 3
		}
		sum += d
	}
	return s + strconv.Itoa((10-sum%10)%10)
}

func (g *seedGen) copies() []seedCopy {
	r := g.cpRNG
	out := make([]seedCopy, 0, g.opt.Books*g.opt.CopiesPerBook)
	for b := 1; b <= g.opt.Books; b++ {
		for range g.opt.CopiesPerBook {
			c := seedCopy{
				book:      int64(b),
				publisher: uint8(r.IntN(len(seedPublishers))),
				year:      int16(1950 + r.IntN(75)),
			}
			switch x := r.IntN(100); {
			case x < 58:
				c.status = 'a'
			case x < 85:
				c.status = 'o'
				c.hasDue, c.dueBack = true, int32(r.IntN(42)-14)
			case x < 92:
				c.status = 'r'
				c.hasDue, c.dueBack = true, int32(1+r.IntN(21))
			default:
				c.status = 'm'
			}
			out = append(out, c)
		}
	}
	// The ids are random version 4 UUIDs, handed out in ascending order:
	// rows in book order are then also in key order, so both the clustered
	// index and the book_id index grow at their ends instead of splitting
	// pages all over, which makes a large seed several times faster.
	ids := make([][16]byte, len(out))
	for i := range ids {
		putUUIDv4(&ids[i], r)
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	for i := range out {
		out[i].id = ids[i]
	}
	return out
}

func putUUIDv4(id *[16]byte, r *rand.Rand) {
	hi, lo := r.Uint64(), r.Uint64()
	for i := range 8 {
		id[i] = byte(hi >> (56 - 8*i))
		id[8+i] = byte(lo >> (56 - 8*i))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
}

func formatUUID(id [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

func insertNames(ctx context.Context, db *sqlx.DB, table string, names []string) error {
	return insertRows(ctx, db, table, []string{"id", "name"}, len(names), func(i int, args []any) []any {
		return append(args, i+1, names[i])
	})
}

func insertAuthors(ctx context.Context, db *sqlx.DB, authors []seedAuthor) error {
	cols := []string{"id", "first_name", "last_name", "date_of_birth", "date_of_death"}
	return insertRows(ctx, db, "author", cols, len(authors), func(i int, args []any) []any {
		a := authors[i]
		return append(args, i+1, a.first, a.last, nullIfEmpty(a.born), nullIfEmpty(a.died))
	})
}

func insertBooks(ctx context.Context, db *sqlx.DB, books []seedBook) error {
	cols := []string{"id", "title", "author_id", "summary", "isbn", "language_id"}
	return insertRows(ctx, db, "book", cols, len(books), func(i int, args []any) []any {
		b := books[i]
		return append(args, i+1, b.title, nullIfZero(b.author), b.summary, b.isbn, nullIfZero(b.language))
	})
}

func insertBookGenres(ctx context.Context, db *sqlx.DB, rows []seedBookGenre) error {
	return insertRowsSplit(ctx, db, "book_genre", []string{"book_id", "genre_id"}, len(rows), func(i int, args []any) []any {
		return append(args, rows[i].book, rows[i].genre)
	}, func(i int) string {
		// go-mysql-server's in-memory tables key pending rows by their
		// primary key values printed end to end, so (2, 13) and (21, 3)
		// collide within one statement: keep such rows apart.
		return strconv.FormatInt(rows[i].book, 10) + strconv.FormatInt(rows[i].genre, 10)
	})
}

func insertCopies(ctx context.Context, db *sqlx.DB, copies []seedCopy) error {
	cols := []string{"id", "book_id", "imprint", "due_back", "status"}
	return insertRows(ctx, db, "book_instance", cols, len(copies), func(i int, args []any) []any {
		c := copies[i]
		var due any
		if c.hasDue {
			due = seedToday.AddDate(0, 0, int(c.dueBack)).Format(time.DateOnly)
		}
		imprint := seedPublishers[c.publisher] + ", " + strconv.Itoa(int(c.year))
		return append(args, formatUUID(c.id), c.book, imprint, due, string(c.status))
	})
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIfZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// insertRows inserts n rows into table with multi-row INSERTs of
// seedBatchRows rows, seedTxRows rows to a transaction. row appends the
// values of row i to args.
func insertRows(ctx context.Context, db *sqlx.DB, table string, cols []string, n int,
	row func(i int, args []any) []any,
) error {
	return insertRowsSplit(ctx, db, table, cols, n, row, nil)
}

// insertRowsSplit is insertRows that also ends a statement early rather than
// put two rows with the same splitKey in it.
func insertRowsSplit(ctx context.Context, db *sqlx.DB, table string, cols []string, n int,
	row func(i int, args []any) []any, splitKey func(i int) string,
) error {
	if n == 0 {
		return nil
	}
	conn, err := bulkConn(ctx, db)
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	defer releaseBulkConn(conn)

	full := insertStmt(table, cols, seedBatchRows)
	args := make([]any, 0, seedBatchRows*len(cols))
	for txStart := 0; txStart < n; txStart += seedTxRows {
		txEnd := min(txStart+seedTxRows, n)
		tx, err := conn.BeginTxx(ctx, nil)
		if err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		for lo, hi := txStart, 0; lo < txEnd; lo = hi {
			hi = batchEnd(lo, min(lo+seedBatchRows, txEnd), splitKey)
			q := full
			if hi-lo != seedBatchRows {
				q = insertStmt(table, cols, hi-lo)
			}
			args = args[:0]
			for i := lo; i < hi; i++ {
				args = row(i, args)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("insert rows %d-%d into %s: %w", lo+1, hi, table, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("insert into %s: commit: %w", table, err)
		}
	}
	return nil
}

// bulkConn returns a connection with foreign key checks off, as a bulk load
// does (mysqldump too): the seed makes parents before children by
// construction, and go-mysql-server re-sorts the whole parent table for every
// child row it checks, which makes a seed of a few thousand books take
// minutes there. The book_detail triggers are off too: Seed rebuilds it.
func bulkConn(ctx context.Context, db *sqlx.DB) (*sqlx.Conn, error) {
	const q = `SET SESSION foreign_key_checks = 0, @` + bulkLoadVariable + ` = 1`
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		conn.Close()
		return nil, fmt.Errorf("turn foreign key checks off: %w", err)
	}
	return conn, nil
}

// releaseBulkConn turns the checks back on and returns conn to the pool, or
// throws it away if they cannot be turned on again.
func releaseBulkConn(conn *sqlx.Conn) {
	const q = `SET SESSION foreign_key_checks = 1, @` + bulkLoadVariable + ` = NULL`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, q); err != nil {
		// driver.ErrBadConn from Raw makes database/sql close the
		// connection instead of pooling it.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	conn.Close()
}

// batchEnd returns the end of the batch that starts at lo: limit, or the
// first row whose splitKey is already in the batch.
func batchEnd(lo, limit int, splitKey func(i int) string) int {
	if splitKey == nil {
		return limit
	}
	seen := make(map[string]struct{}, limit-lo)
	for i := lo; i < limit; i++ {
		k := splitKey(i)
		if _, dup := seen[k]; dup {
			return i
		}
		seen[k] = struct{}{}
	}
	return limit
}

// insertStmt returns INSERT INTO table (cols) VALUES (?, ...), ... for rows rows.
func insertStmt(table string, cols []string, rows int) string {
	tuple := "(" + strings.Repeat("?,", len(cols)-1) + "?)"
	var b strings.Builder
	b.Grow(len(table) + 32 + rows*(len(tuple)+1))
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
	}
	return b.String()
}

// runAll runs the steps concurrently; the first failure cancels the others.
func runAll(ctx context.Context, steps ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Go(func() {
			if errs[i] = step(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// Report the cause, not the cancellations it caused in the others.
	var cause []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			cause = append(cause, err)
		}
	}
	if len(cause) == 0 {
		return errors.Join(errs...)
	}
	return errors.Join(cause...)
}
