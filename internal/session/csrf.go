package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"net/url"
	"sync"

	"github.com/gofiber/fiber/v2"
)

// Django's names, so the forms read familiarly.
const (
	// CSRFField is the form field that carries the token.
	CSRFField = "csrfmiddlewaretoken"
	// CSRFHeader carries the token of a request made by a script.
	CSRFHeader = "X-CSRFToken"
)

// A CSRF token is HMAC-SHA256(secret, "csrf:" + session id): nothing is
// stored, every replica with the same secret checks it, and a new session
// id (Forget me) makes the old token worthless.
const tokenLen = 43 // base64url of 32 bytes

// tokenMaker makes and checks tokens with a pool of MACs, each with room
// for its input and sum, so a token costs no allocation but its string.
type tokenMaker struct{ macs sync.Pool }

type tokenMAC struct {
	mac hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

func newTokenMaker(secret []byte) tokenMaker {
	key := append([]byte(nil), secret...)
	return tokenMaker{macs: sync.Pool{New: func() any {
		return &tokenMAC{mac: hmac.New(sha256.New, key), in: make([]byte, 0, len(tokenInput)+idLen)}
	}}}
}

const tokenInput = "csrf:"

// sum writes the MAC of id into out.
func (t *tokenMaker) sum(id string, out *[sha256.Size]byte) {
	m := t.macs.Get().(*tokenMAC)
	m.in = append(append(m.in[:0], tokenInput...), id...)
	m.mac.Reset()
	m.mac.Write(m.in)
	*out = [sha256.Size]byte(m.mac.Sum(m.sum[:0]))
	t.macs.Put(m)
}

func (t *tokenMaker) token(id string) string {
	var sum [sha256.Size]byte
	t.sum(id, &sum)
	var text [tokenLen]byte
	base64.RawURLEncoding.Encode(text[:], sum[:])
	return string(text[:])
}

// valid tells, in constant time, whether token is id's.
func (t *tokenMaker) valid(id, token string) bool {
	var got, want [sha256.Size]byte
	if len(token) != tokenLen {
		return false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(got[:], []byte(token)); err != nil || n != len(got) {
		return false
	}
	t.sum(id, &want)
	return hmac.Equal(got[:], want[:])
}

// CSRFToken is the token for the page's forms. It is made only for an id
// this server vouches for: the session read from the store, or an id made
// in this response. A browser whose cookie names no stored session is given
// a new id (in its cookie, not yet stored) so that its token can be checked
// when the form comes back; an id the client merely names gets no token,
// or anyone could have one for an id they then plant in another browser.
// "" when the store cannot be read (the id cannot be vouched for) or a new
// session is not admitted: the page then shows no form.
func (s *Session) CSRFToken() string {
	if _, _, err := s.load(false); err != nil {
		return ""
	}
	if s.id == "" {
		if !s.admitted() {
			return ""
		}
		s.state, s.id = issued, newID()
		s.setCookie()
	}
	return s.m.csrf.token(s.id)
}

// ErrNoCookie is CheckCSRF's 403 for a form sent without a session
// cookie: most often from a browser that refuses cookies, which a reload
// does not help.
var ErrNoCookie = fiber.NewError(fiber.StatusForbidden, "form sent without the session cookie")

// CheckCSRF refuses, with 403, an unsafe request (a POST) whose token,
// from the form body or the X-CSRFToken header and never the query string,
// is not the one for the browser's session id. Over HTTPS it also wants
// an Origin or Referer of this site, as Django does: a man in the middle
// of plain HTTP could otherwise plant a cookie and a matching token.
func (m *Manager) CheckCSRF(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace:
		return c.Next()
	}
	if c.Protocol() == "https" && !sameOrigin(c) {
		return fiber.ErrForbidden
	}
	token := c.Get(CSRFHeader)
	if token == "" {
		token = string(c.Request().PostArgs().Peek(CSRFField))
	}
	id := From(c).cookieID
	if id == "" {
		return ErrNoCookie
	}
	if !m.csrf.valid(id, token) {
		return fiber.ErrForbidden
	}
	return c.Next()
}

// sameOrigin reports whether the request's Origin, or without one its
// Referer, is https on the host the request was sent to. c.Protocol and
// c.Hostname believe forwarded headers only from trusted proxies.
func sameOrigin(c *fiber.Ctx) bool {
	from := c.Get(fiber.HeaderOrigin)
	if from == "" || from == "null" {
		from = c.Get(fiber.HeaderReferer)
	}
	u, err := url.Parse(from)
	return err == nil && u.Scheme == "https" && u.Host == c.Hostname()
}
