package routes

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/csrf"
)

// Django's names, so the forms read familiarly.
const (
	csrfCookieName = "csrftoken"
	csrfFormField  = "csrfmiddlewaretoken"
	// csrfLifetime bounds a token; one past half its life is replaced on
	// the next page that shows a form.
	csrfLifetime = 12 * time.Hour
)

type (
	csrfTokenLocal struct{} // the token a page's forms carry
	csrfSkipLocal  struct{} // set when this request needs no new token
)

// csrfGuard is Fiber's csrf middleware with its tokens in the session.
// Every POST is checked. On GET the middleware would read and rewrite the
// session on every page view; the guard runs it only when the page shows
// a form and the session holds no token it can reuse, so a returning
// browser's page view costs no session write.
type csrfGuard struct {
	middleware fiber.Handler
	sessions   *sessionManager
}

func newCSRFGuard(sessions *sessionManager, cookieSecure bool) *csrfGuard {
	return &csrfGuard{
		sessions: sessions,
		middleware: csrf.New(csrf.Config{
			Next:           func(c *fiber.Ctx) bool { return c.Locals(csrfSkipLocal{}) == true },
			KeyLookup:      "form:" + csrfFormField,
			CookieName:     csrfCookieName,
			CookiePath:     "/",
			CookieSecure:   cookieSecure,
			CookieHTTPOnly: true,
			CookieSameSite: "Lax",
			Expiration:     csrfLifetime,
			SingleUseToken: true, // a used token leaves the session, keeping it small
			Session:        sessions.store,
			SessionKey:     csrfTokenKey,
			ContextKey:     csrfTokenLocal{},
			KeyGenerator:   newSessionID,
			ErrorHandler:   sessions.csrfFailure,
		}),
	}
}

// protect checks the token of unsafe methods; on GET it provides one when
// showsForm says the page will render a form.
func (g *csrfGuard) protect(showsForm func(*fiber.Ctx) bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
			switch {
			case c.Method() == fiber.MethodHead || !showsForm(c):
				c.Locals(csrfSkipLocal{}, true)
			case g.reuseToken(c):
				c.Locals(csrfSkipLocal{}, true)
			case g.refusesNewSession(c):
				c.Locals(csrfSkipLocal{}, true) // no session to keep a token in

			default:
				// The middleware writes the session: drop the request's
				// cached copies so later reads see its token.
				c.Locals(sessionLocal{}, nil)
				c.Locals(viewLocal{}, nil)
			}
		}
		return g.middleware(c)
	}
}

// reuseToken puts the session's token in the page when it has at least
// half its life left and the browser still holds the matching cookie.
func (g *csrfGuard) reuseToken(c *fiber.Ctx) bool {
	v, err := g.sessions.view(c)
	if err != nil || v.fresh {
		return false
	}
	token, ok := v.data[csrfTokenKey].(csrf.Token)
	if !ok || time.Until(token.Expiration) < csrfLifetime/2 || c.Cookies(csrfCookieName) != token.Key {
		return false
	}
	c.Locals(csrfTokenLocal{}, token.Key)
	return true
}

// refusesNewSession reports whether the token would need a new session
// that the request's address may not start now.
func (g *csrfGuard) refusesNewSession(c *fiber.Ctx) bool {
	v, err := g.sessions.view(c)
	return err == nil && v.fresh && !g.sessions.admitNew(c)
}

// csrfToken is the token for the page's forms, or "" when none was issued.
func csrfToken(c *fiber.Ctx) string {
	token, _ := c.Locals(csrfTokenLocal{}).(string)
	return token
}

// csrfFailure answers a request whose token did not check out. The
// middleware cannot tell a forged token from a session it could not read,
// so the session store is asked: when it is down, the answer is a 503 to
// retry, not a 403 that blames the visitor.
func (m *sessionManager) csrfFailure(c *fiber.Ctx, _ error) error {
	if _, err := m.load(c); err != nil && errors.As(err, new(storeError)) {
		return err
	}
	return fiber.ErrForbidden
}
