package routes_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
	"github.com/locallibrary/locallibrary/routes"
)

// TestCachedPagesMatchUncached serves every catalog page kind from the
// cache (twice: the second is a hit) and checks it against the same page
// rendered with the cache off, for each page size.
func TestCachedPagesMatchUncached(t *testing.T) {
	catalog := &fakeCatalog{books: 120, authors: 60}
	cached := mustApp(t, routes.Deps{Catalog: catalog})
	uncached := mustApp(t, routes.Deps{Catalog: catalog, PageCacheBytes: -1})
	var paths []string
	for _, size := range []string{"10", "25", "50"} {
		for _, list := range []string{"/catalog/books/", "/catalog/authors/"} {
			for _, page := range []string{"1", "2", "last"} {
				paths = append(paths, list+"?per_page="+size+"&page="+page)
			}
		}
	}
	paths = append(paths, "/catalog/book/7", "/catalog/author/3", "/catalog/book/120")
	for _, path := range paths {
		want := get(t, uncached, "GET", path)
		for range 2 {
			got := get(t, cached, "GET", path)
			if got.status != 200 || got.body != want.body || got.header.Get("Content-Type") != want.header.Get("Content-Type") {
				t.Fatalf("%s cached: %d %q, uncached %d %q; bodies equal: %v", path, got.status, got.header.Get("Content-Type"),
					want.status, want.header.Get("Content-Type"), got.body == want.body)
			}
		}
	}
	if r := get(t, cached, "GET", "/catalog/book/121"); r.status != 404 {
		t.Errorf("unknown book through the cache: %d, want 404", r.status)
	}
}

// TestCatalogChangesShowWithinTheTTL changes MariaDB under a service that
// caches its pages and waits, with a deadline, until every page shows it.
func TestCatalogChangesShowWithinTheTTL(t *testing.T) {
	db := repotest.MustMariaDB(t)
	repotest.MustSeed(t, db, repository.SeedOptions{Authors: 5, Books: 30, CopiesPerBook: 2, Seed: 7})
	const ttl = 300 * time.Millisecond
	app := mustApp(t, routes.Deps{Catalog: repository.NewCatalog(db, repository.CatalogOptions{CountsMaxAge: 50 * time.Millisecond, ListMarksTTL: ttl}), CountsTTL: 100 * time.Millisecond,
		PageCacheBytes: 1 << 20, PageCacheTTL: ttl})
	b := newBrowser(t, app)
	pages := []string{"/catalog/books/?page=last", "/catalog/book/1", "/catalog/author/1", "/catalog/"}
	for _, p := range pages {
		if r := b.visit(p); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `INSERT INTO book (id, title, author_id, summary, isbn) VALUES (31, 'Zzz A New Book', 1, 'New.', '9789999999999')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE book_instance SET status = 'r', due_back = '2031-05-06' WHERE book_id = 1`); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"/catalog/books/?page=last": "Zzz A New Book",
		"/catalog/book/1":           "May. 6, 2031",
		"/catalog/author/1":         "Zzz A New Book",
		"/catalog/":                 "<strong>Books:</strong> 31",
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for path, text := range want {
		for {
			r := b.visit(path)
			if r.status == 200 && strings.Contains(r.body, text) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still lacks %q after the change (TTL %v)", path, text, ttl)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// countingCatalog counts the record and list queries that reach it, and
// how many run at once; with block set each waits until it is closed.
type countingCatalog struct {
	*fakeCatalog
	queries, running, most atomic.Int64
	block                  chan struct{}
}

func (c *countingCatalog) query(ctx context.Context) error {
	c.queries.Add(1)
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	if c.block == nil {
		return nil
	}
	select {
	case <-c.block:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *countingCatalog) Book(ctx context.Context, id int64) (repository.Book, error) {
	if err := c.query(ctx); err != nil {
		return repository.Book{}, err
	}
	return c.fakeCatalog.Book(ctx, id)
}

func (c *countingCatalog) Author(ctx context.Context, id int64) (repository.AuthorDetail, error) {
	if err := c.query(ctx); err != nil {
		return repository.AuthorDetail{}, err
	}
	return c.fakeCatalog.Author(ctx, id)
}

func (c *countingCatalog) Books(ctx context.Context, limit, offset int) ([]repository.BookSummary, error) {
	if err := c.query(ctx); err != nil {
		return nil, err
	}
	return c.fakeCatalog.Books(ctx, limit, offset)
}

// TestUnknownIDsCostOneQuery: a flood of one unknown id, sent one by one
// or all at once, is one query (per TTL), and the not-found page is the
// same each time; a page past the end of a list costs none.
func TestUnknownIDsCostOneQuery(t *testing.T) {
	catalog := &countingCatalog{fakeCatalog: &fakeCatalog{books: 25, authors: 10}}
	app := mustApp(t, routes.Deps{Catalog: catalog})
	first := get(t, app, "GET", "/catalog/book/999")
	if first.status != 404 || !strings.Contains(first.body, "Not found") {
		t.Fatalf("unknown book: %d\n%.300s", first.status, first.body)
	}
	for range 999 {
		if r := get(t, app, "GET", "/catalog/book/999"); r.status != 404 || r.body != first.body {
			t.Fatalf("unknown book again: %d", r.status)
		}
	}
	if n := catalog.queries.Load(); n != 1 {
		t.Errorf("1,000 requests of one unknown book made %d queries, want 1", n)
	}

	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			for range 10 {
				if r := get(t, app, "GET", "/catalog/author/777"); r.status != 404 {
					t.Errorf("unknown author: %d", r.status)
				}
			}
		})
	}
	wg.Wait()
	if n := catalog.queries.Load() - 1; n != 1 {
		t.Errorf("1,000 requests, 100 at a time, of one unknown author made %d queries, want 1", n)
	}

	before := catalog.queries.Load()
	for range 100 {
		if r := get(t, app, "GET", "/catalog/books/?page=99"); r.status != 404 {
			t.Fatalf("a page past the end: %d", r.status)
		}
	}
	if n := catalog.queries.Load() - before; n != 0 {
		t.Errorf("100 requests of a page past the end made %d list queries, want 0", n)
	}
}

// TestPageLoadsTakeAShareOfThePool floods a replica whose queries hang
// with requests for pages it does not hold: at most 3/4 of the pool's
// connections are taken by them, the requests beyond wait briefly and get
// the busy 503, and /readyz and a held page are served meanwhile.
func TestPageLoadsTakeAShareOfThePool(t *testing.T) {
	const pool, share, flood = 16, 12, 40 // DB_MAX_OPEN_CONNS's default
	catalog := &countingCatalog{fakeCatalog: &fakeCatalog{books: 25, authors: 10}}
	m := routes.NewMetrics()
	logs := new(logRecorder)
	app := mustApp(t, routes.Deps{Catalog: catalog, DBPoolSize: pool, QueryTimeout: 5 * time.Second, Metrics: m, Logger: slog.New(logs)})
	if r := get(t, app, "GET", "/catalog/book/1"); r.status != 200 {
		t.Fatalf("held page: %d", r.status)
	}
	catalog.block = make(chan struct{})
	answers := make(chan response, flood)
	for i := range flood {
		go func() {
			resp, err := app.Test(httptest.NewRequest("GET", "/catalog/book/"+strconv.Itoa(1000+i), nil), 20_000)
			if err != nil {
				answers <- response{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers <- response{status: resp.StatusCode, header: resp.Header, body: string(body)}
		}()
	}
	busy := 0
	for range flood - share {
		r := <-answers
		if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "The catalog is busy") {
			t.Fatalf("beyond the share: %d, Retry-After %q\n%.300s", r.status, r.header.Get("Retry-After"), r.body)
		}
		busy++
	}
	if r := get(t, app, "GET", "/readyz"); r.status != 200 {
		t.Errorf("/readyz while page loads have their share: %d", r.status)
	}
	if r := get(t, app, "GET", "/catalog/book/1"); r.status != 200 {
		t.Errorf("a held page while page loads have their share: %d", r.status)
	}
	close(catalog.block)
	for range share {
		if r := <-answers; r.status != 404 {
			t.Errorf("a page whose load had a slot: %d, want its 404", r.status)
		}
	}
	if most := catalog.most.Load(); most != share {
		t.Errorf("%d page loads ran at once on a pool of %d, want %d", most, pool, share)
	}
	if !strings.Contains(scrape(t, m), `locallibrary_page_cache_total{result="busy"} `+strconv.Itoa(busy)+"\n") {
		t.Errorf("the metrics do not count %d busy answers", busy)
	}
	if errors, _ := logs.lines(slog.LevelError, ""); errors > 0 {
		t.Errorf("busy answers logged at error level: %d lines", errors)
	}
}
