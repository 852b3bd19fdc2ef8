// Package routes holds the site's one route table, its page handlers, the
// error handler and the health endpoints.
package routes

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

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
	// SessionStorage keeps session data: memcached across replicas, or
	// Fiber's in-process memory store for a single process.
	SessionStorage fiber.Storage
	// Visits counts home-page visits atomically, beside the session data.
	Visits   VisitCounter
	Sessions SessionOptions
	Logger   *slog.Logger

	CountsTTL        time.Duration // how long the home-page counts are reused
	CountsStaleLimit time.Duration // how long old counts stand in while MySQL is down
	QueryTimeout     time.Duration // deadline for the queries and cache calls of a request

	// Draining is set when shutdown begins, so /readyz can fail first.
	Draining *atomic.Bool

	// Metrics is served at /metrics; nil means a registry of its own.
	Metrics *Metrics

	// ProxyHeader names the header in which trusted load balancers pass
	// the client's address; it is ignored from any other peer.
	ProxyHeader    string
	TrustedProxies []netip.Prefix

	// AdmitNewSession, if set, is asked with the client's address before
	// a new session is stored; false serves the page without one.
	AdmitNewSession func(clientAddr string) bool
}

// ReadBufferSize bounds a request's headers; larger ones get 431.
const ReadBufferSize = 16 << 10

// New builds the Fiber app with every route of the site.
func New(d Deps) (*fiber.App, error) {
	assets, err := loadAssets()
	if err != nil {
		return nil, fmt.Errorf("load static files: %w", err)
	}
	pages, err := parsePages(assets)
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	if d.Draining == nil {
		d.Draining = new(atomic.Bool)
	}
	if d.QueryTimeout <= 0 {
		d.QueryTimeout = 2 * time.Second
	}
	if d.CountsStaleLimit <= 0 {
		d.CountsStaleLimit = 10 * time.Minute
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	renderer := &renderer{pages: pages}
	sessions := newSessionManager(d.SessionStorage, d.Visits, d.Sessions)
	guard := newCSRFGuard(sessions, d.Sessions.CookieSecure)
	counts := newCountsCache(d.Catalog.Counts, d.CountsTTL, d.CountsStaleLimit, d.QueryTimeout,
		func(result string) { d.Metrics.countsCache.WithLabelValues(result).Inc() })

	ips := clientIPs{header: d.ProxyHeader, trusted: d.TrustedProxies}
	if d.AdmitNewSession != nil {
		sessions.admit = func(c *fiber.Ctx) bool { return d.AdmitNewSession(ips.of(c)) }
	}
	app := fiber.New(fiber.Config{
		AppName:               "locallibrary",
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(renderer, d.Logger, ips),
		ReadBufferSize:        ReadBufferSize,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           2 * time.Minute,
	})

	app.Use(observeRequests(d.Metrics, d.Logger, ips))
	app.Use(recover.New())
	app.Use(requestid.New(requestid.Config{Generator: newRequestID}))
	app.Use(securityHeaders)
	app.Use((&requestDeadline{timeout: d.QueryTimeout}).middleware)

	app.Get("/livez", livez)
	app.Get("/readyz", readyz(d.Catalog, d.Draining))
	app.Get("/metrics", d.Metrics.handler())
	app.Get("/static/:name", assets.handler)
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.Redirect(assets.url("favicon.svg"), fiber.StatusMovedPermanently) })

	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/catalog/", fiber.StatusFound) })
	catalog := app.Group("/catalog", sessions.saveEveryRequest)
	catalog.Get("/", cookieCheck(d.Sessions.CookieSecure), sessions.readAndCountVisit, guard.protect(noticePending(sessions)),
		home(renderer, counts, sessions, d.Metrics.visitsUnavail))
	catalog.Get("/books/", catalogList(renderer, "book_list", counts, sessions, bookCount, d.Catalog.Books))
	catalog.Get("/authors/", catalogList(renderer, "author_list", counts, sessions, authorCount, d.Catalog.Authors))
	catalog.Get("/book/:id", bookDetail(renderer, d.Catalog))
	catalog.Get("/author/:id", authorDetail(renderer, d.Catalog))
	catalog.Post("/notice/dismiss", guard.protect(nil), dismissNotice(sessions))
	catalog.Get("/forget/", guard.protect(always), forgetPage(renderer))
	catalog.Post("/forget/", guard.protect(nil), forgetMe(sessions))
	// Unmatched paths fall through to Fiber's 404, other methods on a known
	// path to its 405; the error handler renders both.
	return app, nil
}
