// Package session owns a browser's session: the cookies (Django's names
// over plain HTTP, __Host- ones when Secure) and the id, the entry kept in
// a Store (the dismissed notice), the chosen page size (a cookie of its
// own), the home page's visit counter, renewal, forgetting, the cookie test
// and CSRF tokens. Pages ask a request's *Session (From) for what they
// need; it reads the store at most once per request.
package session

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

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
	CookieSecure         SecureMode    // SESSION_COOKIE_SECURE; the zero value decides per request

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
	m       *Manager
	c       *fiber.Ctx
	cookies *cookieNames // this response's: Secure and __Host- names, or plain

	state    state
	readErr  error  // why the read failed, in state failed
	cookieID string // the id the browser sent, if it is one we could have issued
	id       string // the session's id: cookieID once read, or one made in this response
	data     entry  // what the store holds, or is to hold, under id
	wrote    bool   // this request wrote the entry, or tried to: Middleware renews no more

	visit          visitResult // Visit's answer: it counts once per request
	cookiesRefused bool        // the cookie test found the browser refusing cookies
	admission      admission   // Options.Admit's answer, asked once per request
}

// state is what a request knows of its session. It only moves forward:
// from unread to what the store said, on to created when the response
// stores a new session; Forget starts it again at none.
type state uint8

const (
	none     state = iota // no session: no id sent, none stored under it, or forgotten
	unread                // the browser sent an id; the store has not been asked
	failed                // the store could not be read (readErr says why)
	issued                // a new id is in this response's cookie, not stored: a form's token needs one
	returned              // the entry under the browser's id was read: its browser came back
	created               // this response stored a new session
)

// stored tells whether the store holds an entry under s.id.
func (s *Session) stored() bool { return s.state == returned || s.state == created }

type visitResult struct {
	done  bool
	count uint64
	err   error
}

type admission uint8

const (
	notAsked admission = iota
	admitted
	refused
)

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
	s := &Session{m: m, c: c, cookies: m.cookiesFor(c)}
	if id := c.Cookies(s.cookies.session); validID(id) {
		s.cookieID, s.state = id, unread
	}
	c.Locals(sessionLocal{}, s)
	err := c.Next()
	if m.opts.SaveEveryRequest && c.Method() == fiber.MethodGet {
		_, _, _ = s.load(false)
	}
	if s.state == returned && !s.wrote && s.renewalDue() {
		_ = s.renew() // best effort: a miss only shortens the session's life
	}
	return err
}

// load reads the session from the store, once per request; with
// countVisit the read also counts a home-page visit, in the same round
// trip, and counted tells whether it did. An entry that does not decode is
// no session: a new one begins.
func (s *Session) load(countVisit bool) (count uint64, counted bool, err error) {
	if s.state != unread {
		return 0, false, s.readErr
	}
	var raw []byte
	if countVisit {
		raw, count, counted, err = s.m.store.GetAndIncrement(EntryKey(s.cookieID), VisitKey(s.cookieID))
	} else {
		raw, err = s.m.store.Get(EntryKey(s.cookieID))
	}
	if err != nil {
		s.state, s.readErr = failed, unavailable(err)
		return 0, false, s.readErr
	}
	data, ok := decodeEntry(raw)
	if !ok {
		s.state = none
		return 0, false, nil // a counter without a readable entry is not this browser's
	}
	s.state, s.id, s.data = returned, s.cookieID, data
	return count, counted, nil
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
	switch s.state {
	case returned, created:
	case issued: // admitted already; its id is the one the cookie and the page's token carry
	default:
		if !s.admitted() {
			return ErrNotAdmitted
		}
		id = newID() // never the client's: the id is the session's only once it is stored
	}
	s.data.returned = s.state == returned
	s.data.savedAt = s.m.now().Unix()
	s.wrote = true // Middleware does not renew after this, even when it failed
	var buf [maxEntryBytes]byte
	if err := s.m.store.Set(EntryKey(id), s.data.encode(buf[:0]), s.lifetime()); err != nil {
		return unavailable(err)
	}
	if s.state != returned {
		s.state = created
	}
	s.id = id
	s.setCookie()
	return nil
}

// admitted asks Options.Admit, once per request, whether a new session may
// be begun: a first visit needs it twice (its CSRF token's id, then the
// session it stores) and must count once against a limit.
func (s *Session) admitted() bool {
	if s.admission == notAsked {
		s.admission = refused
		if s.m.opts.Admit == nil || s.m.opts.Admit(s.c) {
			s.admission = admitted
		}
	}
	return s.admission == admitted
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

// Visit counts one home-page visit and returns the browser's total. A
// returning browser's visit is one store round trip; a new browser's
// session is created here. It counts once per request however often it
// is called.
func (s *Session) Visit() (uint64, error) {
	if !s.visit.done {
		s.visit.count, s.visit.err = s.countVisit()
		s.visit.done = true
	}
	return s.visit.count, s.visit.err
}

func (s *Session) countVisit() (uint64, error) {
	count, counted, err := s.load(true)
	if err != nil {
		return 0, err
	}
	if !s.stored() {
		if err := s.save(); err != nil {
			return 0, err
		}
	} else if s.renewalDue() {
		_ = s.renew() // best effort, as in Middleware: a miss only shortens the session's life
	}
	if counted {
		return count, nil
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
	_, _, err := s.load(false)
	return err == nil && s.data.notice
}

// DismissNotice remembers "Got it" for the session.
func (s *Session) DismissNotice() error {
	if _, _, err := s.load(false); err != nil {
		return err
	}
	if s.stored() && s.data.notice {
		return nil
	}
	s.data.notice = true
	return s.save()
}

// PerPage is the list page size the browser chose, 0 for none.
func (s *Session) PerPage() int {
	raw := s.c.Request().Header.Cookie(s.cookies.perPage)
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
	cookie := s.cookie(s.cookies.perPage, strconv.Itoa(n))
	s.expireWithSession(cookie)
	s.c.Cookie(cookie)
	return nil
}

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
	s.state, s.cookieID, s.id, s.data = none, "", "", entry{}
	for _, name := range []string{s.cookies.session, s.cookies.perPage} {
		expired := s.cookie(name, "")
		expired.Expires = fasthttp.CookieExpireDelete
		s.c.Cookie(expired)
	}
	return nil
}
