package session

import "github.com/gofiber/fiber/v2"

// Django's test cookie, done with redirects so it needs no script: a
// browser that arrives without cookies is sent a test cookie and redirected
// to ?cookies=check. If the cookie comes back, it is sent on to the plain
// page; if not, the page says cookies are refused instead of showing a
// count stuck at 1.
const cookieCheckQuery = "check"

// CookieCheck runs the cookie test on GET requests of the page at path.
func (m *Manager) CookieCheck(path string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Method() != fiber.MethodGet {
			// routes answers HEAD as GET (the same headers), so only
			// methods that show no page get here.
			return c.Next()
		}
		s := From(c)
		hasCookies := c.Cookies(s.cookies.session) != "" || c.Cookies(s.cookies.test) != ""
		checking := c.Query("cookies") == cookieCheckQuery
		switch {
		case hasCookies && checking:
			return c.Redirect(path, fiber.StatusFound)
		case hasCookies:
			return c.Next()
		}
		// Set the test cookie on the check page too: a browser that starts
		// accepting cookies (or follows a link to the check page) gets past
		// it with a reload.
		test := s.cookie(s.cookies.test, "1")
		test.SessionOnly = true
		c.Cookie(test)
		if checking {
			s.cookiesRefused = true
			return c.Next()
		}
		return c.Redirect(path+"?cookies="+cookieCheckQuery, fiber.StatusFound)
	}
}

// CookiesRefused tells whether the browser came back from the cookie test
// without its cookie: its visits cannot be counted.
func (s *Session) CookiesRefused() bool { return s.cookiesRefused }
