// Package routes is the site's HTTP layer: the one route table, the page
// handlers, the edge that refuses bad requests, the caching policy, the
// error handler, the health endpoints and the metrics.
package routes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/locallibrary/locallibrary/internal/pagecache"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/repository"
)

// Catalog is what the pages read from the library's database.
type Catalog interface {
	Counts(ctx context.Context) (repository.Counts, error)
	Books(ctx context.Context, limit, offset int) ([]repository.BookSummary, error)
	Authors(ctx context.Context, limit, offset int) ([]repository.Author, error)
	Book(ctx context.Context, id int64) (repository.Book, error)
	Author(ctx context.Context, id int64) (repository.AuthorDetail, error)
	Ping(ctx context.Context) error
}

// Deps is everything the routes need, built by app (or by a test).
type Deps struct {
	Catalog Catalog
	// Sessions keeps the browsers' sessions, on memcached across
	// replicas or in the process's memory.
	Sessions *session.Manager
	Logger   *slog.Logger

	CountsTTL        time.Duration // how long the home-page counts are reused
	CountsStaleLimit time.Duration // how long old counts stand in while MySQL is down
	QueryTimeout     time.Duration // deadline for the queries and cache calls of a request

	// PageCacheBytes bounds the cache of rendered catalog pages (lists and
	// records); 0 or less turns it off. A page is never served older than
	// PageCacheTTL while MySQL answers, and stands in, marked, for up to
	// CountsStaleLimit while it does not.
	PageCacheBytes int64
	PageCacheTTL   time.Duration

	// DBPoolSize is the catalog's connection pool (DB_MAX_OPEN_CONNS),
	// which bounds the page cache's loads: see pageLoads. 0: no bound.
	DBPoolSize int

	// Draining is set when shutdown begins, so /readyz can fail first.
	Draining *atomic.Bool

	// Metrics records the requests; app serves it on a listener of its
	// own. nil means a registry of its own.
	Metrics *Metrics

	// ProxyHeader names the header in which trusted load balancers pass
	// the client's address. It, X-Forwarded-Proto and the like are
	// believed from TrustedProxies only; their X-Request-Id is logged as
	// proxy_request_id, never taken as the request's id.
	ProxyHeader    string
	TrustedProxies []netip.Prefix

	// BodyLimit bounds a request body; a larger one gets 413 before it is
	// read. The site's forms send well under a kilobyte.
	BodyLimit int
}

// The catalog's routes, under catalogPrefix. The lists' pages link to
// their own route, so it is a constant, not the request's path.
const (
	catalogPrefix = "/catalog"
	booksPath     = "/books/"
	authorsPath   = "/authors/"
)

// pageLoadWait is how long a page load waits for its share of the pool
// before the request gets a 503: long enough for a burst of queries to
// drain, short enough that a flood's requests do not pile up.
const pageLoadWait = 250 * time.Millisecond

// pageLoads shares a pool of n connections out: page loads hold at most
// n-2 at once, which leaves the counts' query and the readiness ping
// theirs; loads of pages not held (misses) at most 3/4 of the pool, which
// leaves the pages held slots to be refreshed in. So a flood of pages not
// held, unknown ids included, keeps neither the counts, /readyz, nor the
// pages people read from MySQL. A load that finds no slot within
// pageLoadWait is a 503. n <= 0: no bound.
func pageLoads(n int) (loads, misses int) {
	if n <= 0 {
		return 0, 0
	}
	loads = max(1, n-2)
	return loads, min(loads, max(1, n*3/4))
}

// ReadBufferSize bounds a request's headers; larger ones get 431.
const ReadBufferSize = 16 << 10

// New builds the Fiber app with every route of the site.
func New(d Deps) (*fiber.App, error) {
	assets, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("load static files: %w", err)
	}
	renderer, err := newRenderer(assets)
	if err != nil {
		return nil, err
	}
	if d.Draining == nil {
		d.Draining = new(atomic.Bool)
	}
	// No defaults here: config has them, and a setting left out is a bug
	// in the caller, not a value to make up.
	var unset []string
	for _, s := range []struct {
		name string
		set  bool
	}{
		{"QueryTimeout", d.QueryTimeout > 0}, {"CountsTTL", d.CountsTTL > 0},
		{"CountsStaleLimit", d.CountsStaleLimit > 0}, {"BodyLimit", d.BodyLimit > 0},
	} {
		if !s.set {
			unset = append(unset, s.name)
		}
	}
	if len(unset) > 0 {
		return nil, fmt.Errorf("routes: %s not set (config has the defaults)", strings.Join(unset, ", "))
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Sessions == nil {
		return nil, errors.New("routes: no session manager")
	}
	sessions := d.Sessions
	health := newCatalogHealth(d.Catalog.Ping)
	d.Catalog = watchedCatalog{Catalog: d.Catalog, health: health}
	counts := newCountsCache(d.Catalog.Counts, d.CountsTTL, d.CountsStaleLimit, d.QueryTimeout,
		func(result string) { d.Metrics.countsCache.WithLabelValues(result).Inc() })
	maxLoads, maxMisses := pageLoads(d.DBPoolSize)
	pageCache := pagecache.New(pagecache.Options{
		MaxBytes: d.PageCacheBytes, TTL: d.PageCacheTTL, StaleLimit: d.CountsStaleLimit,
		LoadTimeout: d.QueryTimeout, Outage: repository.IsUnavailable,
		// A missing record is kept as its page is: a flood of one unknown
		// id costs a query per TTL.
		NotFound: func(err error) bool { return errors.Is(err, repository.ErrNotFound) },
		MaxLoads: maxLoads, MaxMisses: maxMisses, LoadWait: pageLoadWait,
		Record: func(result string) { d.Metrics.pageCache.WithLabelValues(result).Inc() },
	})

	ips := clientIPs{header: d.ProxyHeader, trusted: d.TrustedProxies}
	table := new(routeTable)
	trusted := make([]string, len(d.TrustedProxies))
	for i, p := range d.TrustedProxies {
		trusted[i] = p.String()
	}
	app := fiber.New(fiber.Config{
		AppName:               "locallibrary",
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(renderer, d.Logger, ips, table),
		// Fiber believes X-Forwarded-Proto, -Host and the like (which turn
		// on the CSRF check's Origin rule) only from these peers.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          trusted,
		BodyLimit:               d.BodyLimit,
		ReadBufferSize:          ReadBufferSize,
		ReadTimeout:             30 * time.Second,
		WriteTimeout:            30 * time.Second,
		IdleTimeout:             2 * time.Minute,
	})

	app.Use(observeRequests(d.Metrics, d.Logger, ips))
	app.Use(recover.New())
	app.Use(requestIDs)

	app.Get("/livez", livez)
	app.Get("/readyz", readyz(health, d.Draining))
	app.Get("/static/:name", assets.handler)
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.Redirect(assets.url("favicon.svg"), fiber.StatusMovedPermanently) })

	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/catalog/", fiber.StatusFound) })
	catalog := app.Group(catalogPrefix, sessions.Middleware)
	catalog.Get("/", perBrowser, sessions.CookieCheck("/catalog/"), home(renderer, counts, d.Metrics.visitsUnavail))
	catalog.Get(booksPath, perBrowser, catalogList("book_list", catalogPrefix+booksPath, counts, pageCache, bookCount, d.Catalog.Books, bookList(renderer)))
	catalog.Get(authorsPath, perBrowser, catalogList("author_list", catalogPrefix+authorsPath, counts, pageCache, authorCount, d.Catalog.Authors, authorList(renderer)))
	catalog.Get("/book/:id", bookDetail(renderer, pageCache, d.Catalog))
	catalog.Get("/author/:id", authorDetail(renderer, pageCache, d.Catalog))
	catalog.Post("/notice/dismiss", perBrowser, sessions.CheckCSRF, dismissNotice)
	catalog.Get("/forget/", perBrowser, forgetPage(renderer))
	catalog.Post("/forget/", perBrowser, sessions.CheckCSRF, forgetMe)
	// Unmatched paths fall through to Fiber's 404, other methods on a known
	// path to its 405; the error handler renders both.
	table.routes = app.GetRoutes(true)
	guardEdge(app, d.Metrics, d.Logger, d.Draining)
	return app, nil
}
