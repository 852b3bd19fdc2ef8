package session

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// The site's cookies. Without Secure (plain-HTTP development) they have
// Django's name for the session cookie and plain names for the others.
// With Secure each name takes HostPrefix: a browser then takes the cookie
// only from a secure response, with Path=/ and no Domain, so neither a
// sibling subdomain nor a plain-HTTP response (a man in the middle) can
// plant one. The site reads only the names it sets, so a plain sessionid
// tossed in beside a __Host-sessionid is never read.
const (
	// CookieName is Django's name for the session cookie.
	CookieName = "sessionid"
	// PerPageCookie remembers the list page size a browser chose. It is a
	// cookie beside the session's rather than part of the entry: every list
	// page needs it, and a cookie costs nothing to read where the entry
	// costs a store round trip (a third of a cached list page's CPU). It is
	// not a secret; a value that is not a page size reads as none.
	PerPageCookie = "per_page"
	// HostPrefix starts the name of every cookie the site sets with Secure.
	HostPrefix = "__Host-"

	testCookieName = "cookietest"
)

// cookieNames are the names of a response's cookies, and whether they are
// marked Secure.
type cookieNames struct {
	session, perPage, test string
	secure                 bool
}

var (
	plainCookies = cookieNames{CookieName, PerPageCookie, testCookieName, false}
	hostCookies  = cookieNames{HostPrefix + CookieName, HostPrefix + PerPageCookie, HostPrefix + testCookieName, true}
)

// SecureMode says when the cookies are marked Secure.
type SecureMode uint8

const (
	// SecureOverHTTPS marks them Secure on a request that came over HTTPS:
	// TLS to this process, or X-Forwarded-Proto: https from a trusted
	// proxy, as c.Protocol says (routes has Fiber believe the header from
	// LOCALLIBRARY_TRUSTED_PROXIES only, EnableTrustedProxyCheck). The
	// names therefore follow the request's scheme; behind a TLS-terminating
	// proxy that every request passes, that is every request. A request
	// over plain HTTP gets, and is read by, the plain names.
	SecureOverHTTPS SecureMode = iota
	// SecureAlways is Django's SESSION_COOKIE_SECURE = True.
	SecureAlways
	// SecureNever is Django's SESSION_COOKIE_SECURE = False.
	SecureNever
)

func (m SecureMode) String() string {
	switch m {
	case SecureAlways:
		return "true"
	case SecureNever:
		return "false"
	}
	return "auto"
}

// cookiesFor returns the names and Secure attribute of c's cookies.
func (m *Manager) cookiesFor(c *fiber.Ctx) *cookieNames {
	switch m.opts.CookieSecure {
	case SecureAlways:
		return &hostCookies
	case SecureNever:
		return &plainCookies
	}
	if c.Protocol() == "https" {
		return &hostCookies
	}
	return &plainCookies
}

// cookie is one of the site's cookies with value, in the attributes they
// always have (Path=/ and no Domain, as HostPrefix needs).
func (s *Session) cookie(name, value string) *fiber.Cookie {
	return &fiber.Cookie{Name: name, Value: value, Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: s.cookies.secure}
}

// expireWithSession gives cookie the session cookie's lifetime.
func (s *Session) expireWithSession(cookie *fiber.Cookie) {
	if s.m.opts.ExpireAtBrowserClose {
		cookie.SessionOnly = true
	} else {
		cookie.MaxAge = int(s.m.opts.Lifetime / time.Second)
		cookie.Expires = s.m.now().Add(s.m.opts.Lifetime)
	}
}

func (s *Session) setCookie() {
	cookie := s.cookie(s.cookies.session, s.id)
	s.expireWithSession(cookie)
	s.c.Cookie(cookie)
}
