package routes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/locallibrary/locallibrary/internal/pagecache"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

// homePage is what the home handler learns; complete works out what the
// page derives from it.
type homePage struct {
	Counts      templates.Fragment
	Visits      uint64
	VisitsKnown bool
	// CookiesRefused is set when the browser sent back no cookie after the
	// cookie check: its visits cannot be counted.
	CookiesRefused bool
	ShowNotice     bool
	CSRFToken      string
}

// complete is the page's view: the notice's form shown only with a token,
// the visits in the tutorial's sentence.
func (page homePage) complete() templates.Home {
	h := templates.Home{Counts: page.Counts, CookiesRefused: page.CookiesRefused,
		VisitsKnown: page.VisitsKnown, ShowNoticeForm: page.ShowNotice && page.CSRFToken != "", CSRFToken: page.CSRFToken}
	switch {
	case !page.VisitsKnown:
	case page.Visits == 1:
		h.VisitsSentence = "You have visited this page 1 time."
	default:
		h.VisitsSentence = "You have visited this page " + strconv.FormatUint(page.Visits, 10) + " times."
	}
	return h
}

// home serves GET /catalog/: the catalog's counts and the browser's visits.
func home(r *renderer, counts *countsCache, visitsUnavailable prometheus.Counter) fiber.Handler {
	var shown shownCounts
	return func(c *fiber.Ctx) error {
		totals, stale, err := counts.Get()
		if err != nil {
			return catalogError(err)
		}
		block, err := shown.fragment(c.UserContext(), totals, stale)
		if err != nil {
			return err
		}
		sess := session.From(c)
		page := homePage{Counts: block, CookiesRefused: sess.CookiesRefused()}
		if c.Method() == fiber.MethodGet && !page.CookiesRefused {
			visits, err := sess.Visit() // first: it reads the session and counts in one round trip
			switch {
			case err == nil:
				page.Visits, page.VisitsKnown = visits, true
			case !errors.Is(err, session.ErrNotAdmitted): // a refused new session is no failure
				visitsUnavailable.Inc()
			}
			if page.ShowNotice = !sess.NoticeDismissed(); page.ShowNotice {
				page.CSRFToken = sess.CSRFToken()
			}
		}
		view := page.complete()
		return r.render(c, fiber.StatusOK, templates.HomePage(r.in(homeSection), &view))
	}
}

// shownCounts keeps the home page's counts rendered: they change at most
// once per COUNTS_TTL, and every view of the home page shows them.
type shownCounts struct{ last atomic.Pointer[countsShown] }

type countsShown struct {
	counts repository.Counts
	stale  bool
	html   templates.Fragment
}

// fragment is the counts block for these counts, rendered again only when
// they (or their staleness) changed since the last view.
func (s *shownCounts) fragment(ctx context.Context, n repository.Counts, stale bool) (templates.Fragment, error) {
	if last := s.last.Load(); last != nil && last.counts == n && last.stale == stale {
		return last.html, nil
	}
	html, err := templates.CountsFragment(ctx, n, stale)
	if err != nil {
		return templates.Fragment{}, fmt.Errorf("render the counts: %w", err)
	}
	s.last.Store(&countsShown{counts: n, stale: stale, html: html})
	return html, nil
}

// catalogList serves a paginated list: /catalog/books/ or /catalog/authors/.
// path is the list's route, given when the route is registered: the page's
// links are rendered by a loader that may run after the request is over,
// when c.Path() (a view into Fiber's reused buffers) is another request's.
// total picks the list's size out of the cached counts. A page is cached
// by list, page size and number: the size is the browser's preference.
func catalogList[T any](page, path string, counts *countsCache, pages *pagecache.Cache,
	total func(repository.Counts) int64, fetch func(ctx context.Context, limit, offset int) ([]T, error),
	render func(ctx context.Context, items []T, p templates.Pager) ([]byte, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		size, err := perPage(c)
		if err != nil {
			return err
		}
		totals, _, err := counts.Get()
		if err != nil {
			return catalogError(err)
		}
		p, err := paginate(c.Query("page"), total(totals), size, path)
		if err != nil {
			return err
		}
		key := page + "/" + strconv.Itoa(p.Size) + "/" + strconv.Itoa(p.Number)
		return sendPage(c, pages, key, func(ctx context.Context) ([]byte, error) {
			items, err := fetch(ctx, p.Size, p.offset())
			if err != nil {
				return nil, err
			}
			return render(ctx, items, p.view())
		})
	}
}

func bookCount(n repository.Counts) int64   { return n.Books }
func authorCount(n repository.Counts) int64 { return n.Authors }

// newBookDetail is a book and its copies as the page shows them: the
// copies' label and due date are worked out here, once per render.
func newBookDetail(b repository.Book) templates.BookDetail {
	page := templates.BookDetail{Book: b, Copies: make([]templates.Copy, len(b.Copies))}
	for i, c := range b.Copies {
		v := templates.Copy{ID: c.ID, Imprint: c.Imprint, Status: c.Status, Label: c.StatusLabel()}
		if c.Status != repository.StatusAvailable {
			v.Due = templates.FormatDate(c.DueBack)
		}
		page.Copies[i] = v
	}
	return page
}

// bookList renders a page of the book list.
func bookList(r *renderer) func(context.Context, []repository.BookSummary, templates.Pager) ([]byte, error) {
	return func(ctx context.Context, books []repository.BookSummary, p templates.Pager) ([]byte, error) {
		return r.bytes(ctx, templates.BookListPage(r.in(booksSection), &templates.BookList{Books: books, Pager: p}))
	}
}

// authorList renders a page of the author list.
func authorList(r *renderer) func(context.Context, []repository.Author, templates.Pager) ([]byte, error) {
	return func(ctx context.Context, authors []repository.Author, p templates.Pager) ([]byte, error) {
		return r.bytes(ctx, templates.AuthorListPage(r.in(authorsSection), &templates.AuthorList{Authors: authors, Pager: p}))
	}
}

// bookDetail serves GET /catalog/book/:id.
func bookDetail(r *renderer, pages *pagecache.Cache, catalog Catalog) fiber.Handler {
	return detail(pages, "book/", func(ctx context.Context, id int64) ([]byte, error) {
		book, err := catalog.Book(ctx, id)
		if err != nil {
			return nil, err
		}
		view := newBookDetail(book)
		return r.bytes(ctx, templates.BookDetailPage(r.in(booksSection), &view))
	})
}

// authorDetail serves GET /catalog/author/:id.
func authorDetail(r *renderer, pages *pagecache.Cache, catalog Catalog) fiber.Handler {
	return detail(pages, "author/", func(ctx context.Context, id int64) ([]byte, error) {
		author, err := catalog.Author(ctx, id)
		if err != nil {
			return nil, err
		}
		return r.bytes(ctx, templates.AuthorDetailPage(r.in(authorsSection), &author))
	})
}

// detail serves a record's page by its :id, through the page cache.
func detail(pages *pagecache.Cache, prefix string, render func(ctx context.Context, id int64) ([]byte, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := parseID(c.Params("id"))
		if err != nil {
			return err
		}
		return sendPage(c, pages, prefix+strconv.FormatInt(id, 10), func(ctx context.Context) ([]byte, error) {
			return render(ctx, id)
		})
	}
}

// staleNotice marks a cached page served while the catalog is down, in
// the words the home page uses for its counts.
const staleNotice = `<p class="notice">This page may be out of date: the catalog is not answering right now.</p>`

// sendPage answers with the page under key from the page cache, rendered
// by render when the cache does not have it.
func sendPage(c *fiber.Ctx, pages *pagecache.Cache, key string, render func(context.Context) ([]byte, error)) error {
	body, stale, err := pages.Get(c.UserContext(), key, render)
	if err != nil {
		return catalogError(err)
	}
	if stale {
		body = withNotice(body)
	}
	c.Status(fiber.StatusOK)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Response().SetBody(body) // a copy: the cache keeps its page
	return nil
}

// withNotice returns a copy of page with staleNotice at the start of its
// main content (or of its body, should the layout lose its <main>).
func withNotice(page []byte) []byte {
	at := 0
	for _, tag := range []string{"<main", "<body"} {
		if i := bytes.Index(page, []byte(tag)); i >= 0 {
			if end := bytes.IndexByte(page[i:], '>'); end >= 0 {
				at = i + end + 1
				break
			}
		}
	}
	out := make([]byte, 0, len(page)+len(staleNotice))
	out = append(out, page[:at]...)
	out = append(out, staleNotice...)
	return append(out, page[at:]...)
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
// path is the list's route (never the request's path: see catalogList).
type pager struct {
	Number, Pages, Size int
	path                string
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
	return pager{Number: number, Pages: pages, Size: size, path: path}, nil
}

func (p pager) offset() int { return (p.Number - 1) * p.Size }

// view is the pager as the page shows it: its links and the size choices.
func (p pager) view() templates.Pager {
	v := templates.Pager{Number: p.Number, Pages: p.Pages, Size: p.Size, PerPageChoices: perPageChoices}
	if p.Number > 1 {
		v.PreviousURL = p.url(p.Number - 1)
	}
	if p.Number < p.Pages {
		v.NextURL = p.url(p.Number + 1)
	}
	return v
}

// url links another page of the list, keeping a chosen page size.
func (p pager) url(number int) string {
	u := p.path + "?page=" + strconv.Itoa(number)
	if p.Size != defaultPerPage {
		u += "&per_page=" + strconv.Itoa(p.Size)
	}
	return u
}
