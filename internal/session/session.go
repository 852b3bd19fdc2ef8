// Package session owns a browser's session: the cookie and its id, the
// entry kept in a Store (the dismissed notice), the chosen page size (a
// cookie of its own), the home page's visit counter, renewal, forgetting,
// the cookie test and CSRF tokens. Pages ask a request's *Session (From) for what they need; it
// reads the store at most once per request.
package session

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// CookieName is Django's name for the session cookie.
const CookieName = "sessionid"

// ErrUnavailable wraps every failure of the Store: the session could not
// be read or saved, which is no fault of the visitor.
var ErrUnavailable = errors.New("session storage unavailable")

// ErrNotAdmitted is returned when Options.Admit refused to store a new
// session: the page is served without one.
var ErrNotAdmitted = errors.New("new session not admitted")

// Options are the Django-like session settings. Every duration must be
// set: the defaults live in config.
type Options struct {
	Lifetime             time.Duration // SESSION_COOKIE_AGE
	ExpireAtBrowserClose bool          // SESSION_EXPIRE_AT_BROWSER_CLOSE
	SaveEveryRequest     bool          // SESSION_SAVE_EVERY_REQUEST
	CookieSecure         bool          // SESSION_COOKIE_SECURE

	// FirstVisitLifetime is how long a new session is kept until its
	// browser comes back; then it gets Lifetime. A client that never
	// returns (a crawler, a flood) costs storage only this long.
	FirstVisitLifetime time.Duration

	// Secret keys the CSRF tokens; every replica must have the same one.
	// At least MinSecretLen bytes.
	Secret []byte

	// Admit, if set, is asked before a new session is begun, at most once
	// per request; when it says no, the page is served without a session.
	// nil admits all.
	Admit func(c *fiber.Ctx) bool
}

// MinSecretLen is the shortest Options.Secret New accepts.
const MinSecretLen = 32

// Manager makes the sessions of requests, on one Store.
type Manager struct {
	store Store
	opts  Options
	csrf  tokenMaker
	// renewAfter is how old an entry may get before a visit writes it
	// again: writing on every visit would cost a write per page view; this
	// keeps a session alive at least 90% of its lifetime after the last
	// visit.
	renewAfter time.Duration
	now        func() time.Time
}

// New returns a Manager keeping sessions in store.
func New(store Store, opts Options) (*Manager, error) {
	switch {
	case store == nil:
		return nil, errors.New("session: no store")
	case opts.Lifetime < time.Second:
		return nil, fmt.Errorf("session: lifetime %v is under a second", opts.Lifetime)
	case opts.FirstVisitLifetime < time.Second || opts.FirstVisitLifetime > opts.Lifetime:
		return nil, fmt.Errorf("session: first-visit lifetime %v must be from 1s to the lifetime %v", opts.FirstVisitLifetime, opts.Lifetime)
	case len(opts.Secret) < MinSecretLen:
		return nil, fmt.Errorf("session: secret of %d bytes, want at least %d", len(opts.Secret), MinSecretLen)
	}
	return &Manager{store: store, opts: opts, csrf: newTokenMaker(opts.Secret), renewAfter: opts.Lifetime / 10, now: time.Now}, nil
}

// Session is one request's view of the browser's session. It is made by
// Manager.Middleware and found with From; it is not safe for use by other
// goroutines or after the request.
type Session struct {
	m *Manager
	c *fiber.Ctx

	cookieID string // the id the browser sent, if it is one we could have issued
	id       string // the session's id once known to be stored, or issued now
	data     entry

	read    bool  // the store was read (or there was nothing to read)
	readErr error // why the read failed
	stored  bool  // the store holds an entry for id
	found   bool  // the entry was read from the store: its browser came back
	saved   bool  // this request wrote the entry, or tried to

	visited  bool // Visit ran: it never counts twice
	visits   uint64
	visitErr error

	counted bool   // the read counted a visit too
	count   uint64 // the count it returned

	cookiesRefused bool

	askedAdmit, admit bool // Options.Admit's answer, asked once per request
}

type sessionLocal struct{}

// From returns the request's session, made by Manager.Middleware.
func From(c *fiber.Ctx) *Session {
	s, _ := c.Locals(sessionLocal{}).(*Session)
	if s == nil {
		panic("session: From on a route without Manager.Middleware")
	}
	return s
}

// Middleware gives the request its Session, and afterwards renews the
// stored entry when it is due (a browser that came back, an old entry, or
// SaveEveryRequest). Nothing is read here: the session is read when a page
// first asks for it.
func (m *Manager) Middleware(c *fiber.Ctx) error {
	s := &Session{m: m, c: c}
	if id := c.Cookies(CookieName); validID(id) {
		s.cookieID = id
	}
	c.Locals(sessionLocal{}, s)
	err := c.Next()
	if m.opts.SaveEveryRequest && s.cookieID != "" && c.Method() == fiber.MethodGet {
		_ = s.load(false)
	}
	if s.stored && !s.saved && s.renewalDue() {
		_ = s.renew() // best effort: a miss only shortens the session's life
	}
	return err
}

// load reads the session from the store, once per request; with
// countVisit the read also counts a home-page visit, in the same round
// trip. An entry that does not decode is no session: a new one begins.
func (s *Session) load(countVisit bool) error {
	if s.read {
		return s.readErr
	}
	s.read = true
	if s.cookieID == "" {
		return nil
	}
	var raw []byte
	var err error
	if countVisit {
		raw, s.count, s.counted, err = s.m.store.GetAndIncrement(EntryKey(s.cookieID), VisitKey(s.cookieID))
	} else {
		raw, err = s.m.store.Get(EntryKey(s.cookieID))
	}
	if err != nil {
		s.counted = false
		s.readErr = unavailable(err)
		return s.readErr
	}
	if data, ok := decodeEntry(raw); ok {
		s.id, s.data, s.stored, s.found = s.cookieID, data, true, true
	} else {
		s.counted = false // a counter without a readable entry is not this browser's
	}
	return nil
}

func unavailable(err error) error { return fmt.Errorf("%w: %w", ErrUnavailable, err) }

// lifetime is how long the entry and counter are kept from now: a session
// whose browser has not come back yet gets the first-visit lifetime.
func (s *Session) lifetime() time.Duration {
	if s.data.returned {
		return s.m.opts.Lifetime
	}
	return s.m.opts.FirstVisitLifetime
}

// renewalDue tells whether the stored entry should be written again.
func (s *Session) renewalDue() bool {
	return s.m.opts.SaveEveryRequest || !s.data.returned || s.data.age(s.m.now()) > s.m.renewAfter
}

// save writes the entry, creating the session (a new id and cookie) when
// the store holds none. A session read from the store is one whose browser
// came back: it gets the full lifetime from now on.
func (s *Session) save() error {
	id := s.id
	if !s.stored {
		if !s.admitted() {
			return ErrNotAdmitted
		}
		id = newID() // the id is the session's only once it is stored
	}
	s.data.returned = s.found
	s.data.savedAt = s.m.now().Unix()
	s.saved = true // Middleware does not renew after this, even when it failed
	var buf [maxEntryBytes]byte
	if err := s.m.store.Set(EntryKey(id), s.data.encode(buf[:0]), s.lifetime()); err != nil {
		return unavailable(err)
	}
	s.id, s.stored = id, true
	s.setCookie()
	return nil
}

// admitted asks Options.Admit, once per request, whether a new session may
// be begun: a first visit needs it twice (its CSRF token's id, then the
// session it stores) and must count once against a limit.
func (s *Session) admitted() bool {
	if !s.askedAdmit {
		s.askedAdmit = true
		s.admit = s.m.opts.Admit == nil || s.m.opts.Admit(s.c)
	}
	return s.admit
}

// renew writes a returning browser's entry again and extends its counter.
func (s *Session) renew() error {
	if err := s.save(); err != nil {
		return err
	}
	if err := s.m.store.Touch(VisitKey(s.id), s.lifetime()); err != nil {
		return unavailable(err)
	}
	return nil
}

// cookie is one of the session's cookies with value, in the attributes
// they always have.
func (s *Session) cookie(name, value string) *fiber.Cookie {
	return &fiber.Cookie{Name: name, Value: value, Path: "/", HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode, Secure: s.m.opts.CookieSecure}
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
	cookie := s.cookie(CookieName, s.id)
	s.expireWithSession(cookie)
	s.c.Cookie(cookie)
}

// Visit counts one home-page visit and returns the browser's total. A
// returning browser's visit is one store round trip; a new browser's
// session is created here. It counts once per request however often it
// is called.
func (s *Session) Visit() (uint64, error) {
	if !s.visited {
		s.visited = true
		s.visits, s.visitErr = s.visit()
	}
	return s.visits, s.visitErr
}

func (s *Session) visit() (uint64, error) {
	if err := s.load(true); err != nil {
		return 0, err
	}
	if !s.stored {
		if err := s.save(); err != nil {
			return 0, err
		}
	} else if s.renewalDue() {
		_ = s.renew() // best effort, as in Middleware: a miss only shortens the session's life
	}
	if s.counted {
		return s.count, nil
	}
	n, err := s.m.store.Increment(VisitKey(s.id), s.lifetime())
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

// NoticeDismissed tells whether the browser clicked "Got it". A session
// that cannot be read has not.
func (s *Session) NoticeDismissed() bool {
	return s.load(false) == nil && s.data.notice
}

// DismissNotice remembers "Got it" for the session.
func (s *Session) DismissNotice() error {
	if err := s.load(false); err != nil {
		return err
	}
	if s.stored && s.data.notice {
		return nil
	}
	s.data.notice = true
	return s.save()
}

// PerPageCookie remembers the list page size a browser chose. It is a
// cookie beside the session's rather than part of the entry: every list
// page needs it, and a cookie costs nothing to read where the entry costs
// a store round trip (a third of a cached list page's CPU). It is not a
// secret; a value that is not a page size reads as none.
const PerPageCookie = "per_page"

// PerPage is the list page size the browser chose, 0 for none.
func (s *Session) PerPage() int {
	raw := s.c.Request().Header.Cookie(PerPageCookie)
	if len(raw) == 0 || len(raw) > 3 || raw[0] < '1' || raw[0] > '9' {
		return 0 // also keeps out the signs and leading zeros Atoi takes
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n > 255 {
		return 0
	}
	return n
}

// SetPerPage remembers the list page size n (1 to 255) for the session's
// lifetime, setting the cookie only when it changes.
func (s *Session) SetPerPage(n int) error {
	if n < 1 || n > 255 {
		return fmt.Errorf("session: page size %d out of range", n)
	}
	if s.PerPage() == n {
		return nil
	}
	cookie := s.cookie(PerPageCookie, strconv.Itoa(n))
	s.expireWithSession(cookie)
	s.c.Cookie(cookie)
	return nil
}

// HasSession tells whether the browser sent a session cookie this server
// could have issued (stored or not).
func (s *Session) HasSession() bool { return s.cookieID != "" }

// Forget ends the browser's session: its entry and visit count are deleted
// and its cookie expired; the next page begins a new session.
func (s *Session) Forget() error {
	if id := s.cookieID; id != "" {
		if err := s.m.store.Delete(EntryKey(id)); err != nil {
			return unavailable(err)
		}
		if err := s.m.store.Delete(VisitKey(id)); err != nil {
			return unavailable(err)
		}
	}
	s.cookieID, s.id, s.data, s.stored, s.found, s.read = "", "", entry{}, false, false, true
	for _, name := range []string{CookieName, PerPageCookie} {
		expired := s.cookie(name, "")
		expired.Expires = fasthttp.CookieExpireDelete
		s.c.Cookie(expired)
	}
	return nil
}
