package routes

import (
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/locallibrary/locallibrary/internal/pagecache"
	"github.com/locallibrary/locallibrary/internal/session"
	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

// errCatalogUnavailable means MySQL did not answer: the page is a 503 the
// browser may retry, not a bug.
var errCatalogUnavailable = errors.New("catalog unavailable")

// retryAfterSeconds is what a 503 asks the browser to wait.
const retryAfterSeconds = "5"

// catalogError turns a catalog failure into what the error handler shows:
// not found stays not found, a database that does not answer is a 503,
// anything else stays an internal error.
func catalogError(err error) error {
	switch {
	case errors.Is(err, repository.ErrNotFound):
		return fiber.ErrNotFound
	case repository.IsUnavailable(err):
		return errors.Join(errCatalogUnavailable, err)
	default:
		return err
	}
}

type errorPage struct {
	Heading, Message string
}

// errorHandler is the one place errors become responses. Users see a page
// in the site's layout and never the error's text; only 5xx are logged.
func errorHandler(r *renderer, logger *slog.Logger, ips clientIPs, routes *routeTable) fiber.ErrorHandler {
	busy := newFloodLog(logger, slog.LevelWarn, "catalog page loads refused: their share of the pool stayed taken")
	unavailable := newFloodLog(logger, slog.LevelError, "catalog unavailable: pages answered 503")
	return func(c *fiber.Ctx, err error) error {
		status := fiber.StatusInternalServerError
		var page errorPage
		var fe *fiber.Error
		flood := false // a 503 that comes in floods: counted, not a line each
		switch {
		case errors.Is(err, errCatalogUnavailable):
			status, flood = fiber.StatusServiceUnavailable, true // an outage: a line a second, not one a page
			unavailable.note(err)
		case errors.Is(err, pagecache.ErrBusy): // the page loads' share of the pool stayed taken
			status, page, flood = fiber.StatusServiceUnavailable, catalogBusyPage, true
			busy.note(nil)
		case errors.Is(err, ErrOverConnectionCap):
			status, flood = fiber.StatusServiceUnavailable, true // the edge counts them
		case errors.Is(err, session.ErrUnavailable):
			status, page = fiber.StatusServiceUnavailable, sessionsUnavailablePage
		case errors.Is(err, session.ErrNoCookie):
			status, page = fiber.StatusForbidden, cookiesNeededPage
		case errors.As(err, &fe):
			status = fe.Code
		}
		if page == (errorPage{}) {
			page = errorPageFor(status)
		}
		if status >= 500 && !flood {
			// Copies: a handler may keep the record past the request, whose
			// method, path and id are views into Fiber's reused buffers.
			logger.Error("request failed", "status", status, "method", strings.Clone(c.Method()), "path", strings.Clone(c.Path()),
				"request_id", requestID(c), proxyRequestID(c), "client_ip", ips.of(c), "err", err)
		}
		if status == fiber.StatusServiceUnavailable {
			c.Set(fiber.HeaderRetryAfter, retryAfterSeconds)
		}
		if status == fiber.StatusMethodNotAllowed {
			c.Set(fiber.HeaderAllow, routes.allow(c.Path()))
		}
		if renderErr := r.render(c, status, templates.MessagePage(r.in(noSection), (*templates.Message)(&page))); renderErr != nil {
			return c.Status(status).SendString(page.Heading)
		}
		return nil
	}
}

// sessionsUnavailablePage answers a change to the session (Got it, Forget
// me) while memcached is down.
var sessionsUnavailablePage = errorPage{"Your session is unavailable",
	"Your choice could not be saved right now. Please try again in a few seconds."}

// catalogBusyPage answers a page that is not held while the queries for
// pages have all the database connections they may have.
var catalogBusyPage = errorPage{"The catalog is busy",
	"Too many pages are being looked up in the library's catalog right now. Please try again in a few seconds."}

// cookiesNeededPage answers a form sent without the session cookie.
var cookiesNeededPage = errorPage{"Cookies are needed for this",
	"Your browser did not send this site's cookie with the form, and the form needs it. " +
		"If you sent it from this site, please allow cookies for this site, reload the page and try again."}

func errorPageFor(status int) errorPage {
	switch status {
	case fiber.StatusNotFound:
		return errorPage{"Not found", "There is nothing at this address. The book or author may have been removed, or the link may be mistyped."}
	case fiber.StatusMethodNotAllowed:
		return errorPage{"Method not allowed", "This address does not answer that kind of request."}
	case fiber.StatusRequestTimeout:
		return errorPage{"Request timeout", "Your browser took too long to send its request. Please try again."}
	case fiber.StatusRequestEntityTooLarge:
		return errorPage{"Request too large", "Your browser sent more data than this site's forms accept."}
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return errorPage{"Request headers too large", "Your browser sent more header data than this site accepts. Clearing this site's cookies usually helps."}
	case fiber.StatusServiceUnavailable:
		return errorPage{"The catalog is unavailable", "The library's catalog is not answering right now. Please try again in a few seconds."}
	case fiber.StatusForbidden:
		// The one 403 is a form whose CSRF token is not the session's:
		// mostly a page kept from before "Forget me" or a session's end.
		return errorPage{"This form has expired", "It was sent from a page older than your session on this site " +
			"(for example one opened before \u201cForget me\u201d, in another tab or through the back button), or from another site. " +
			"Open the page again, reload it, and try once more."}
	}
	if status >= 500 {
		return errorPage{"Something went wrong", "The page could not be shown. The problem has been logged; please try again later."}
	}
	return errorPage{"Bad request", "The request could not be understood."}
}

// routeTable is the app's routes, read to answer a 405's Allow header. It
// is filled once the routes are registered.
type routeTable struct{ routes []fiber.Route }

// allow lists the methods of the routes that match path.
func (t *routeTable) allow(path string) string {
	var methods []string
	for _, r := range t.routes {
		if routeMatches(r.Path, path) && !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
	}
	return strings.Join(methods, ", ")
}

// routeMatches reports whether the route pattern matches path as Fiber
// matches it (case-insensitive, trailing slash optional): ":name" stands
// for one segment, "*" for the rest. A middleware's prefix ("/") does not
// match the longer paths it runs for.
func routeMatches(pattern, path string) bool {
	pattern, path = strings.Trim(pattern, "/"), strings.Trim(path, "/")
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		seg, rest, more := strings.Cut(path, "/")
		switch {
		case pseg == "*":
			return true
		case strings.HasPrefix(pseg, ":"):
			if seg == "" {
				return false
			}
		case !strings.EqualFold(pseg, seg):
			return false
		}
		if !pmore || !more {
			return pmore == more
		}
		pattern, path = prest, rest
	}
}
