package routes

import (
	"strconv"

	"github.com/gofiber/fiber/v2"
)

// The tutorial's examples of what sessions are for: a notice the visitor
// has accepted stays hidden, a chosen page size is remembered, and the
// visitor can ask to be forgotten.

const defaultPerPage = 10 // the tutorial's paginate_by

var perPageChoices = []int{10, 25, 50}

// perPage is the list's page size: ?per_page= when given (and then
// remembered in the session), else the session's choice, else 10.
func (m *sessionManager) perPage(c *fiber.Ctx) (int, error) {
	raw := c.Query("per_page")
	if raw == "" {
		if size, ok := m.lookup(c, perPageKey).(int); ok && validPerPage(size) {
			return size, nil
		}
		return defaultPerPage, nil
	}
	size, err := strconv.Atoi(raw)
	if err != nil || !validPerPage(size) || raw[0] == '+' {
		return 0, fiber.ErrNotFound
	}
	if c.Cookies(SessionCookieName) != "" || size != defaultPerPage {
		_ = m.set(c, perPageKey, size) // not remembered while memcached is down; the page still shows
	}
	return size, nil
}

func validPerPage(n int) bool {
	for _, choice := range perPageChoices {
		if n == choice {
			return true
		}
	}
	return false
}

// noticePending tells whether the home page shows the demo notice.
func noticePending(m *sessionManager) func(*fiber.Ctx) bool {
	return func(c *fiber.Ctx) bool {
		return !cookiesRefused(c) && m.lookup(c, noticeKey) != true
	}
}

func always(*fiber.Ctx) bool { return true }

// dismissNotice serves POST /catalog/notice/dismiss ("Got it").
// The CSRF token leaves the session with it: the csrf middleware puts a
// fresh one in after every POST, and with no form on the home page any
// more it would only make each of the browser's page views read and decode
// a session three times its size. A page with a form makes a new one.
func dismissNotice(m *sessionManager) fiber.Handler {
	return func(c *fiber.Ctx) error {
		sess, err := m.load(c)
		if err != nil {
			return err
		}
		sess.Set(noticeKey, true)
		sess.Delete(csrfTokenKey)
		if err := m.save(c, sess); err != nil {
			return err
		}
		return c.Redirect("/catalog/", fiber.StatusSeeOther)
	}
}

type forgetPageData struct{ CSRFToken string }

// forgetPage serves GET /catalog/forget/: what forgetting means, and the button.
func forgetPage(r *renderer) fiber.Handler {
	return func(c *fiber.Ctx) error {
		return r.render(c, fiber.StatusOK, "forget", forgetPageData{CSRFToken: csrfToken(c)})
	}
}

// forgetMe serves POST /catalog/forget/: a new session, counting from one.
func forgetMe(m *sessionManager) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := m.forget(c); err != nil {
			return err
		}
		return c.Redirect("/catalog/", fiber.StatusSeeOther)
	}
}

// Django's test cookie, done with redirects so it needs no script: a
// browser that arrives without cookies is sent a test cookie and redirected
// to ?cookies=check. If the cookie comes back, it is sent on to the plain
// page; if not, the page says cookies are refused instead of showing a
// count stuck at 1.
const (
	testCookieName   = "cookietest"
	cookieCheckQuery = "check"
)

type cookiesRefusedLocal struct{}

func cookieCheck(secure bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Method() != fiber.MethodGet {
			return c.Next() // HEAD and the like start no session
		}
		hasCookies := c.Cookies(SessionCookieName) != "" || c.Cookies(testCookieName) != ""
		checking := c.Query("cookies") == cookieCheckQuery
		switch {
		case hasCookies && checking:
			return c.Redirect("/catalog/", fiber.StatusFound)
		case hasCookies:
			return c.Next()
		}
		// Set the test cookie on the check page too: a browser that starts
		// accepting cookies (or follows a link to the check page) gets past
		// it with a reload.
		c.Cookie(&fiber.Cookie{Name: testCookieName, Value: "1", Path: "/catalog/", HTTPOnly: true,
			SameSite: fiber.CookieSameSiteLaxMode, Secure: secure, SessionOnly: true})
		c.Set(fiber.HeaderCacheControl, "no-store")
		if checking {
			c.Locals(cookiesRefusedLocal{}, true)
			return c.Next()
		}
		return c.Redirect("/catalog/?cookies="+cookieCheckQuery, fiber.StatusFound)
	}
}

func cookiesRefused(c *fiber.Ctx) bool { return c.Locals(cookiesRefusedLocal{}) == true }
