package routes

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"

	"github.com/locallibrary/locallibrary/repository"
)

// livez answers while the process runs; it checks nothing else, so a slow
// database never gets a healthy replica restarted.
func livez(c *fiber.Ctx) error {
	return c.SendString("ok")
}

// readyz says whether this replica should get traffic: not while it drains,
// and not when MySQL is down. Memcached is left out on purpose: its outage
// would take every replica out at once, while the site can still serve
// pages without it.
func readyz(health *catalogHealth, draining *atomic.Bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if draining.Load() {
			return c.Status(fiber.StatusServiceUnavailable).SendString("draining")
		}
		if !health.ready() {
			return c.Status(fiber.StatusServiceUnavailable).SendString("database unavailable")
		}
		return c.SendString("ok")
	}
}

// Readiness asks "can this replica serve?", not "is MySQL idle?". A ping
// on every probe queues behind the page queries for a pool connection, so
// a flood of unknown ids (each a query, and a 404) made every replica
// unready at once although each query was answered. So the pages' own
// queries are the evidence: while MySQL answered one (a row or "no such
// row") in the last answerFresh, and no connection has failed since, the
// replica is ready without a query of its own. Only without such evidence
// (an idle replica, a failed connection) does a probe ping, one at a time,
// within pingBudget. A query that timed out proves nothing either way: in
// a flood it is one that waited for the pool; if MySQL hangs, the answers
// stop and the ping decides.
const (
	answerFresh = 2 * time.Second
	pingBudget  = time.Second
)

// catalogHealth keeps that evidence, fed by watchedCatalog.
type catalogHealth struct {
	ping     func(context.Context) error
	migrated atomic.Bool  // a ping found the schema: answers to pages then prove readiness
	answered atomic.Int64 // Unix nanoseconds of the last answer
	broken   atomic.Int64 // Unix nanoseconds of the last failed connection
	pings    singleflight.Group
	now      func() time.Time
}

func newCatalogHealth(ping func(context.Context) error) *catalogHealth {
	return &catalogHealth{ping: ping, now: time.Now}
}

// note records what one catalog call says about MySQL.
func (h *catalogHealth) note(err error) {
	switch {
	case err == nil || errors.Is(err, repository.ErrNotFound):
		h.answered.Store(h.now().UnixNano())
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		// waited too long, for the pool or for MySQL: no evidence
	case repository.IsUnavailable(err):
		h.broken.Store(h.now().UnixNano())
	}
}

// ready tells whether MySQL answers: by the pages' answers, else by a ping.
// A ping that times out while the pages' queries are answered (a flood
// that began while this replica was idle) is no outage either.
func (h *catalogHealth) ready() bool {
	if h.answering() {
		return true
	}
	res := <-h.pings.DoChan("ping", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), pingBudget)
		defer cancel()
		err := h.ping(ctx)
		if err == nil {
			h.migrated.Store(true)
		}
		h.note(err)
		return nil, err
	})
	return res.Err == nil || h.answering()
}

// answering tells whether a page's query was answered lately, with no
// connection failed since, on a database a ping found migrated.
func (h *catalogHealth) answering() bool {
	answered := h.answered.Load()
	return h.migrated.Load() && answered > h.broken.Load() && h.now().UnixNano()-answered < int64(answerFresh)
}

// watchedCatalog is the pages' Catalog, telling health what each call
// says about MySQL.
type watchedCatalog struct {
	Catalog
	health *catalogHealth
}

func (w watchedCatalog) Counts(ctx context.Context) (repository.Counts, error) {
	v, err := w.Catalog.Counts(ctx)
	w.health.note(err)
	return v, err
}

func (w watchedCatalog) Books(ctx context.Context, limit, offset int) ([]repository.BookSummary, error) {
	v, err := w.Catalog.Books(ctx, limit, offset)
	w.health.note(err)
	return v, err
}

func (w watchedCatalog) Authors(ctx context.Context, limit, offset int) ([]repository.Author, error) {
	v, err := w.Catalog.Authors(ctx, limit, offset)
	w.health.note(err)
	return v, err
}

func (w watchedCatalog) Book(ctx context.Context, id int64) (repository.Book, error) {
	v, err := w.Catalog.Book(ctx, id)
	w.health.note(err)
	return v, err
}

func (w watchedCatalog) Author(ctx context.Context, id int64) (repository.AuthorDetail, error) {
	v, err := w.Catalog.Author(ctx, id)
	w.health.note(err)
	return v, err
}
