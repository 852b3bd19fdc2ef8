// Command fibersession serves the site's home page with Fiber's own
// session middleware (github.com/gofiber/fiber/v2/middleware/session) on
// the project's memcachestore, for the bench's home-fiber-session target:
// what the site's session layer (internal/session) is measured against.
// The same page (templates.HomePage, the catalog's counts reused for
// LOCALLIBRARY_COUNTS_TTL) and the same visit counter, kept in the
// session as Fiber's middleware keeps everything: read the session, add
// one, save it. It has none of the site's other middleware (metrics per
// request, request ids, the cookie test), so what it costs beyond the
// session is, if anything, less than the site.
//
// It reads the service's LOCALLIBRARY_ settings (MySQL, memcached,
// addresses) and serves /metrics like the service, with
// fibersession_home_pages_total{visit="counted"|"unavailable"}, which the
// bench reads.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/bytebufferpool"

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/memcachestore"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fibersession:", err)
		os.Exit(1)
	}
}

// nav is the layout's navigation, as the site's home page has it.
var nav = []templates.NavLink{
	{Href: "/catalog/", Label: "Home", Current: true},
	{Href: "/catalog/books/", Label: "All books"},
	{Href: "/catalog/authors/", Label: "All authors"},
}

func run(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if cfg.MySQLDSN == "" || len(cfg.MemcachedServers) == 0 {
		return errors.New("LOCALLIBRARY_MYSQL_DSN and LOCALLIBRARY_MEMCACHED_SERVERS are needed")
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	db, err := repository.Open(ctx, cfg.MySQLDSN, cfg.DBMaxOpenConns, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	catalog := repository.NewCatalog(db, repository.CatalogOptions{})
	storage, err := memcachestore.New(memcachestore.Config{Servers: cfg.MemcachedServers, Timeout: cfg.MemcachedTimeout,
		MaxConns: cfg.MemcachedMaxConns, KeyPrefix: cfg.MemcachedKeyPrefix})
	if err != nil {
		return err
	}
	defer storage.Close()
	sessions := session.New(session.Config{Storage: storage, Expiration: cfg.SessionLifetime,
		CookieHTTPOnly: true, CookieSameSite: fiber.CookieSameSiteLaxMode})

	chrome, err := templates.NewChrome("/static/style.css", "/static/favicon.svg", nav)
	if err != nil {
		return err
	}
	// The counts, read and rendered every CountsTTL: the site reuses them
	// as long.
	var counts atomic.Pointer[templates.Fragment]
	refresh := func() error {
		c, err := catalog.Counts(ctx)
		if err != nil {
			return err
		}
		html, err := templates.CountsFragment(ctx, c, false)
		if err == nil {
			counts.Store(&html)
		}
		return err
	}
	if err := refresh(); err != nil {
		return err
	}
	go func() {
		for t := time.NewTicker(cfg.CountsTTL); ctx.Err() == nil; {
			select {
			case <-ctx.Done():
			case <-t.C:
				_ = refresh()
			}
		}
	}()

	reg := prometheus.NewRegistry()
	pages := newPagesCounter()
	reg.MustRegister(pages, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app := newApp(sessions, chrome, func() templates.Fragment { return *counts.Load() }, pages)

	metrics := &http.Server{Addr: cfg.MetricsAddr, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = metrics.ListenAndServe() }()
	go func() {
		<-ctx.Done()
		_ = app.Shutdown()
		_ = metrics.Close()
	}()
	return app.Listen(cfg.HTTPAddr)
}

func newPagesCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fibersession_home_pages_total",
		Help: "Home pages served, by whether they counted the visit."}, []string{"visit"})
}

// newApp is the home page and "Got it" on sessions.
func newApp(sessions *session.Store, chrome *templates.Chrome, counts func() templates.Fragment, pages *prometheus.CounterVec) *fiber.App {
	counted, unavailable := pages.WithLabelValues("counted"), pages.WithLabelValues("unavailable")
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReadBufferSize: 16 << 10})
	app.Get("/readyz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/catalog/", func(c *fiber.Ctx) error {
		page := templates.Home{Counts: counts()}
		if visits, dismissed, err := visit(sessions, c); err == nil {
			page.VisitsKnown, page.VisitsSentence, page.ShowNoticeForm = true, sentence(visits), !dismissed
			counted.Inc()
		} else {
			unavailable.Inc()
		}
		buf := bytebufferpool.Get()
		defer bytebufferpool.Put(buf)
		if err := templates.HomePage(chrome, &page).Render(c.UserContext(), buf); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Response().SetBody(buf.B) // copies: buf goes back to the pool
		return nil
	})
	// "Got it", without the site's CSRF check: only the bench posts here.
	app.Post("/catalog/notice/dismiss", func(c *fiber.Ctx) error {
		sess, err := sessions.Get(c)
		if err != nil {
			return err
		}
		sess.Set("notice", true)
		if err := sess.Save(); err != nil {
			return err
		}
		return c.Redirect("/catalog/", fiber.StatusSeeOther)
	})
	return app
}

// visit counts the visit in the session: two keys, the count and the
// notice, read, changed and saved whole, as Fiber's middleware does.
func visit(sessions *session.Store, c *fiber.Ctx) (visits int, dismissed bool, err error) {
	sess, err := sessions.Get(c)
	if err != nil {
		return 0, false, err
	}
	visits, _ = sess.Get("visits").(int)
	dismissed, _ = sess.Get("notice").(bool)
	visits++
	sess.Set("visits", visits)
	sess.Set("notice", dismissed)
	return visits, dismissed, sess.Save()
}

func sentence(visits int) string {
	if visits == 1 {
		return "You have visited this page 1 time."
	}
	return "You have visited this page " + strconv.Itoa(visits) + " times."
}
