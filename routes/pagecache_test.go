package routes_test

import (
	"context"
	"strings"
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
