package routes

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/locallibrary/locallibrary/repository"
)

// perPage is the tutorial's paginate_by.
const perPage = 10

type homePage struct {
	Counts      repository.Counts
	CountsStale bool
	Visits      uint64
	VisitsKnown bool
}

// home serves GET /catalog/: the catalog's counts and the browser's visits.
func home(r *renderer, counts *countsCache, sessions *sessionManager, visitsUnavailable prometheus.Counter) fiber.Handler {
	return func(c *fiber.Ctx) error {
		totals, stale, err := counts.Get(c.UserContext())
		if err != nil {
			return catalogError(err)
		}
		page := homePage{Counts: totals, CountsStale: stale}
		visits, err := sessions.countVisit(c)
		if err == nil {
			page.Visits, page.VisitsKnown = visits, true
		} else {
			visitsUnavailable.Inc()
		}
		return r.render(c, fiber.StatusOK, "home", page)
	}
}

type bookListPage struct {
	Books []repository.BookSummary
	Pager pager
}

// bookList serves GET /catalog/books/?page=N.
func bookList(r *renderer, catalog Catalog, counts *countsCache) fiber.Handler {
	return func(c *fiber.Ctx) error {
		totals, _, err := counts.Get(c.UserContext())
		if err != nil {
			return catalogError(err)
		}
		p, err := paginate(c.Query("page"), totals.Books, perPage, "/catalog/books/")
		if err != nil {
			return err
		}
		books, err := catalog.Books(c.UserContext(), perPage, p.offset())
		if err != nil {
			return catalogError(err)
		}
		return r.render(c, fiber.StatusOK, "book_list", bookListPage{Books: books, Pager: p})
	}
}

type authorListPage struct {
	Authors []repository.Author
	Pager   pager
}

// authorList serves GET /catalog/authors/?page=N.
func authorList(r *renderer, catalog Catalog, counts *countsCache) fiber.Handler {
	return func(c *fiber.Ctx) error {
		totals, _, err := counts.Get(c.UserContext())
		if err != nil {
			return catalogError(err)
		}
		p, err := paginate(c.Query("page"), totals.Authors, perPage, "/catalog/authors/")
		if err != nil {
			return err
		}
		authors, err := catalog.Authors(c.UserContext(), perPage, p.offset())
		if err != nil {
			return catalogError(err)
		}
		return r.render(c, fiber.StatusOK, "author_list", authorListPage{Authors: authors, Pager: p})
	}
}

type bookDetailPage struct{ Book repository.Book }

// bookDetail serves GET /catalog/book/:id.
func bookDetail(r *renderer, catalog Catalog) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := parseID(c.Params("id"))
		if err != nil {
			return err
		}
		book, err := catalog.Book(c.UserContext(), id)
		if err != nil {
			return catalogError(err)
		}
		return r.render(c, fiber.StatusOK, "book_detail", bookDetailPage{Book: book})
	}
}

type authorDetailPage struct {
	repository.AuthorDetail
}

// authorDetail serves GET /catalog/author/:id.
func authorDetail(r *renderer, catalog Catalog) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := parseID(c.Params("id"))
		if err != nil {
			return err
		}
		author, err := catalog.Author(c.UserContext(), id)
		if err != nil {
			return catalogError(err)
		}
		return r.render(c, fiber.StatusOK, "author_detail", authorDetailPage{AuthorDetail: author})
	}
}

// parseID accepts only a positive decimal id that fits in 64 bits; anything
// else names no record, so it is a 404.
func parseID(raw string) (int64, error) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 || raw[0] == '+' {
		return 0, fiber.ErrNotFound
	}
	return id, nil
}

// pager is Django's Paginator page, computed in Go for the template.
type pager struct {
	Number, Pages int
	size          int
	path          string
}

// paginate reads ?page= as Django's paginator does: absent means 1, "last"
// the last page; anything malformed or out of range is a 404. An empty
// list still has one (empty) first page.
func paginate(raw string, total int64, size int, path string) (pager, error) {
	pages := int((total + int64(size) - 1) / int64(size))
	pages = max(pages, 1)
	number := 1
	switch raw {
	case "":
	case "last":
		number = pages
	default:
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > pages || raw[0] == '+' {
			return pager{}, fiber.ErrNotFound
		}
		number = n
	}
	return pager{Number: number, Pages: pages, size: size, path: path}, nil
}

func (p pager) offset() int           { return (p.Number - 1) * p.size }
func (p pager) HasPrevious() bool     { return p.Number > 1 }
func (p pager) HasNext() bool         { return p.Number < p.Pages }
func (p pager) PreviousURL() string   { return p.url(p.Number - 1) }
func (p pager) NextURL() string       { return p.url(p.Number + 1) }
func (p pager) url(number int) string { return p.path + "?page=" + strconv.Itoa(number) }
