package routes

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"
	"github.com/gofiber/fiber/v2/utils"
	lru "github.com/hashicorp/golang-lru/v2"
)

// SessionCookieName is Django's name for the session cookie.
const SessionCookieName = "sessionid"

// Keys of the session's data, kept short: every byte is stored per browser.
const (
	savedAtKey   = "t" // when the entry was last written (Unix seconds)
	noticeKey    = "n" // the demo notice was dismissed
	perPageKey   = "p" // results per page on the lists
	csrfTokenKey = "c" // Fiber's csrf middleware keeps its token here
)

// SessionOptions are the Django-like session settings.
type SessionOptions struct {
	Lifetime             time.Duration // SESSION_COOKIE_AGE
	ExpireAtBrowserClose bool          // SESSION_EXPIRE_AT_BROWSER_CLOSE
	SaveEveryRequest     bool          // SESSION_SAVE_EVERY_REQUEST
	CookieSecure         bool          // SESSION_COOKIE_SECURE
}

// VisitCounter keeps a number per session beside the session data and
// increments it atomically, so visits that arrive together are all counted.
type VisitCounter interface {
	// Increment adds one, creating the counter at 1 with the given lifetime.
	Increment(key string, exp time.Duration) (uint64, error)
	// Touch renews the counter's lifetime.
	Touch(key string, exp time.Duration) error
	Delete(key string) error
}

// sessionReader reads a session and counts a visit in one round trip;
// memcachestore.Storage is one. Incrementing a missing counter must not
// create it.
type sessionReader interface {
	GetAndIncrement(getKey, incrKey string) (val []byte, count uint64, counted bool, err error)
}

// sessionManager owns the browser's session: loading it, counting visits
// and keeping both alive for the session's lifetime.
type sessionManager struct {
	store  *session.Store
	visits VisitCounter
	opts   SessionOptions
	// decoded memoizes the decoding of stored entries by their bytes. A
	// returning browser's entry is unchanged between its visits, and
	// decoding it (Fiber's codec is gob, with a new decoder every time)
	// costs more than the rest of the page; keyed by content, it is never
	// stale.
	decoded *lru.Cache[string, map[string]any]
	// readAndCount, when the storage has it, serves a returning browser's
	// home page with one memcached round trip instead of two.
	readAndCount sessionReader
	// admit, if set, says whether the request may store a new session
	// (per client address, so one address cannot evict everybody's
	// sessions); see admitNew.
	admit func(c *fiber.Ctx) bool
	// renewAfter is how old a session entry may get before a visit writes it
	// again. Renewing on every visit would cost a write per page view; this
	// keeps a session alive at least 90% of its lifetime after the last visit.
	renewAfter time.Duration
}

func newSessionManager(storage fiber.Storage, visits VisitCounter, opts SessionOptions) *sessionManager {
	if opts.Lifetime <= 0 {
		opts.Lifetime = 14 * 24 * time.Hour
	}
	cfg := session.Config{
		Expiration:        opts.Lifetime,
		KeyLookup:         "cookie:" + SessionCookieName,
		CookiePath:        "/",
		CookieSecure:      opts.CookieSecure,
		CookieHTTPOnly:    true,
		CookieSameSite:    "Lax",
		CookieSessionOnly: opts.ExpireAtBrowserClose,
		KeyGenerator:      newSessionID,
	}
	if storage != nil {
		cfg.Storage = classifiedStorage{storage}
	}
	store := session.New(cfg) // with no storage, Fiber's in-process memory store
	if visits == nil {
		visits = &localVisitCounter{storage: store.Storage}
	}
	decoded, err := lru.New[string, map[string]any](decodedEntries)
	if err != nil {
		panic(err) // only for a size below 1
	}
	m := &sessionManager{store: store, visits: visits, opts: opts, renewAfter: opts.Lifetime / 10, decoded: decoded}
	if storage != nil {
		m.readAndCount, _ = storage.(sessionReader)
	}
	return m
}

// decodedEntries bounds the memo of decoded session entries: about 100
// bytes each, a few MB for as many browsers as a replica sees at once.
const decodedEntries = 20_000

// newSessionID returns 128 bits from crypto/rand: an id nobody can guess.
// (Fiber's default, utils.UUIDv4, is fine; utils.UUID is predictable.)
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Go ≥ 1.24
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func visitKey(sessionID string) string { return "v:" + sessionID }

// sessionLocal caches the request's loaded session in c.Locals, so the
// middleware and handler of one request read memcached once.
type sessionLocal struct{}

// load returns the browser's session, read from storage at most once per
// request. A stored entry Fiber cannot decode is dropped and a fresh session
// begins, rather than failing every later request from that browser.
// Failures of the storage itself are returned.
func (m *sessionManager) load(c *fiber.Ctx) (*session.Session, error) {
	if sess, ok := c.Locals(sessionLocal{}).(*session.Session); ok {
		return sess, nil
	}
	sess, err := m.store.Get(c)
	if err != nil && !errors.As(err, new(storeError)) {
		id := utils.CopyString(c.Cookies(SessionCookieName))
		if err = m.store.Delete(id); err == nil {
			sess, err = m.store.Get(c)
		}
	}
	if err != nil {
		return nil, err
	}
	c.Locals(sessionLocal{}, sess)
	return sess, nil
}

// sessionView is the browser's session as stored, for reading: decoded
// once per distinct entry and shared between requests, so never changed.
type sessionView struct {
	id   string
	data map[string]any
	// fresh is set when the browser has no stored session: no cookie, an
	// id the server did not issue, or an entry that cannot be decoded.
	fresh bool
}

type (
	viewLocal       struct{}
	earlyVisitLocal struct{} // *earlyVisit
)

// earlyVisit is a visit counted while the session was read.
type earlyVisit struct {
	count   uint64
	counted bool  // the counter existed
	err     error // the read failed
}

// readAndCountVisit reads a returning browser's session and counts its
// home-page visit in one round trip, before the rest of the page looks at
// the session. Only a session that exists gets its visit counted here.
func (m *sessionManager) readAndCountVisit(c *fiber.Ctx) error {
	id := c.Cookies(SessionCookieName)
	if m.readAndCount == nil || c.Method() != fiber.MethodGet || id == "" || cookiesRefused(c) {
		return c.Next()
	}
	raw, count, counted, err := m.readAndCount.GetAndIncrement(id, visitKey(id))
	if err != nil {
		c.Locals(earlyVisitLocal{}, &earlyVisit{err: storeError{err}})
		return c.Next()
	}
	v := &sessionView{fresh: true}
	if raw != nil {
		if data, ok := m.decode(raw); ok {
			v = &sessionView{id: utils.CopyString(id), data: data}
			c.Locals(earlyVisitLocal{}, &earlyVisit{count: count, counted: counted})
		}
	}
	c.Locals(viewLocal{}, v)
	return c.Next()
}

// view reads the browser's session without going through Fiber's Store:
// one storage read, and no decoding for an entry seen before. Writes still
// go through load and save.
func (m *sessionManager) view(c *fiber.Ctx) (*sessionView, error) {
	if v, ok := c.Locals(viewLocal{}).(*sessionView); ok {
		return v, nil
	}
	if early, ok := c.Locals(earlyVisitLocal{}).(*earlyVisit); ok && early.err != nil {
		return nil, early.err
	}
	v := &sessionView{fresh: true}
	if id := c.Cookies(SessionCookieName); id != "" {
		raw, err := m.store.Storage.Get(id)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			if data, ok := m.decode(raw); ok {
				v = &sessionView{id: utils.CopyString(id), data: data}
			}
		}
	}
	c.Locals(viewLocal{}, v)
	return v, nil
}

// decode decodes a stored entry as Fiber's session does, or finds it
// decoded already.
func (m *sessionManager) decode(raw []byte) (map[string]any, bool) {
	if data, ok := m.decoded.Get(string(raw)); ok {
		return data, true
	}
	var data map[string]any
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&data); err != nil {
		return nil, false
	}
	m.decoded.Add(string(raw), data)
	return data, true
}

// save writes the session, which Fiber then releases: the request's cached
// copy is dropped with it. (Fiber's Save leaves the session locked when the
// write fails: it is not used again either way.)
func (m *sessionManager) save(c *fiber.Ctx, sess *session.Session) error {
	if sess.Fresh() && !m.admitNew(c) {
		return errNewSessionRefused
	}
	c.Locals(sessionLocal{}, nil)
	c.Locals(viewLocal{}, nil)
	sess.Set(savedAtKey, time.Now().Unix())
	return sess.Save()
}

// countVisit counts one home-page visit for the browser and returns its
// total. A returning browser costs one storage read (shared with the rest
// of the request) and one atomic increment.
func (m *sessionManager) countVisit(c *fiber.Ctx) (uint64, error) {
	v, err := m.view(c)
	if err != nil {
		return 0, err
	}
	early, _ := c.Locals(earlyVisitLocal{}).(*earlyVisit)
	if !v.fresh && !m.renewalDue(v.data) {
		if early != nil && early.counted {
			return early.count, nil
		}
		return m.visits.Increment(visitKey(v.id), m.opts.Lifetime)
	}
	// A new session, or one to renew: through Fiber's session, to save it.
	sess, err := m.load(c)
	if err != nil {
		return 0, err
	}
	id := sess.ID()
	fresh := sess.Fresh()
	renew := !fresh && m.renewalDue(sessionData(sess))
	if fresh || renew {
		if err := m.save(c, sess); err != nil {
			return 0, err
		}
	}
	var visits uint64
	if early != nil && early.counted && id == v.id {
		visits = early.count // counted while the session was read
	} else if visits, err = m.visits.Increment(visitKey(id), m.opts.Lifetime); err != nil {
		return 0, err
	}
	if renew {
		_ = m.visits.Touch(visitKey(id), m.opts.Lifetime) // a miss only shortens the count's life
	}
	return visits, nil
}

// forget ends the browser's session: its data and visit count are deleted
// and a new, empty session with a new id begins.
func (m *sessionManager) forget(c *fiber.Ctx) error {
	sess, err := m.load(c)
	if err != nil {
		return err
	}
	if err := m.visits.Delete(visitKey(sess.ID())); err != nil {
		return err
	}
	if err := sess.Reset(); err != nil {
		return err
	}
	return m.save(c, sess)
}

// set records a choice in the session, writing only when it changes.
func (m *sessionManager) set(c *fiber.Ctx, key string, value any) error {
	sess, err := m.load(c)
	if err != nil {
		return err
	}
	if sess.Get(key) == value && !sess.Fresh() {
		return nil
	}
	sess.Set(key, value)
	return m.save(c, sess)
}

// lookup reads a value from the browser's session; a browser without a
// session cookie costs nothing.
func (m *sessionManager) lookup(c *fiber.Ctx, key string) any {
	v, err := m.view(c)
	if err != nil {
		return nil
	}
	return v.data[key]
}

// sessionData is a Fiber session's values, for code shared with views.
func sessionData(sess *session.Session) map[string]any {
	data := make(map[string]any, 4)
	for _, k := range sess.Keys() {
		data[k] = sess.Get(k)
	}
	return data
}

// renewalDue tells whether the session entry should be written again to
// renew its lifetime. With SaveEveryRequest it always is, as in Django.
func (m *sessionManager) renewalDue(data map[string]any) bool {
	if m.opts.SaveEveryRequest {
		return true
	}
	savedAt, ok := data[savedAtKey].(int64)
	return !ok || time.Since(time.Unix(savedAt, 0)) > m.renewAfter
}

// saveEveryRequest renews a returning browser's session on every catalog
// page when SESSION_SAVE_EVERY_REQUEST is on; the home page does it itself.
func (m *sessionManager) saveEveryRequest(c *fiber.Ctx) error {
	if !m.opts.SaveEveryRequest || c.Path() == "/catalog/" || c.Cookies(SessionCookieName) == "" {
		return c.Next()
	}
	if sess, err := m.load(c); err == nil && !sess.Fresh() {
		id := sess.ID()
		if m.save(c, sess) == nil {
			_ = m.visits.Touch(visitKey(id), m.opts.Lifetime)
		}
	}
	return c.Next()
}

// errNewSessionRefused is save's answer when the request's address has
// started too many sessions lately: the page is served without one.
var errNewSessionRefused = errors.New("too many new sessions from this address")

type admitLocal struct{}

// admitNew reports whether the request may store a new session, asking
// m.admit at most once per request (a page may save twice: its CSRF token
// and its visit).
func (m *sessionManager) admitNew(c *fiber.Ctx) bool {
	if m.admit == nil {
		return true
	}
	if ok, asked := c.Locals(admitLocal{}).(bool); asked {
		return ok
	}
	ok := m.admit(c)
	c.Locals(admitLocal{}, ok)
	return ok
}

// storeError marks a failure of the session storage itself, as opposed to
// stored data that Fiber could not decode.
type storeError struct{ err error }

func (e storeError) Error() string { return "session storage: " + e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// classifiedStorage wraps every storage failure in storeError.
type classifiedStorage struct{ fiber.Storage }

func (s classifiedStorage) Get(key string) ([]byte, error) {
	b, err := s.Storage.Get(key)
	if err != nil {
		return nil, storeError{err}
	}
	return b, nil
}

func (s classifiedStorage) Set(key string, val []byte, exp time.Duration) error {
	if err := s.Storage.Set(key, val, exp); err != nil {
		return storeError{err}
	}
	return nil
}

func (s classifiedStorage) Delete(key string) error {
	if err := s.Storage.Delete(key); err != nil {
		return storeError{err}
	}
	return nil
}

// localVisitCounter counts visits in a single process's storage; a mutex
// makes its read-increment-write atomic. Memcached needs no such lock.
type localVisitCounter struct {
	mu      sync.Mutex
	storage fiber.Storage
}

func (l *localVisitCounter) Increment(key string, exp time.Duration) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	raw, err := l.storage.Get(key)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.ParseUint(string(raw), 10, 64) // missing counts as 0
	n++
	return n, l.storage.Set(key, strconv.AppendUint(nil, n, 10), exp)
}

func (l *localVisitCounter) Touch(key string, exp time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	raw, err := l.storage.Get(key)
	if err != nil || raw == nil {
		return err
	}
	return l.storage.Set(key, raw, exp)
}

func (l *localVisitCounter) Delete(key string) error { return l.storage.Delete(key) }
