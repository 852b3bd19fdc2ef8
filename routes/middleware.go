package routes

import (
	"crypto/rand"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"
)

// newRequestID names a request for the log lines and the X-Request-Id
// header: 128 random bits, so an id says nothing about the process or how
// busy it is (crypto/rand costs well under a microsecond). Routed requests
// get theirs from assignRequestID, refused ones from the edge.
var newRequestID = rand.Text

// requestIDLocal is where a request's id is kept, routed or refused.
const requestIDLocal = "requestid"

var assignRequestID = requestid.New(requestid.Config{Generator: newRequestID, ContextKey: requestIDLocal})

// proxyRequestIDLocal is where a trusted proxy's X-Request-Id is kept.
type proxyRequestIDLocal struct{}

// requestIDs names every request itself. A trusted proxy's X-Request-Id
// is kept beside the replica's, to find the request in the proxy's log,
// but never taken as it: ingress-nginx (like nginx unless told otherwise)
// passes on the id its client sent, so it is anyone's choice.
func requestIDs(c *fiber.Ctx) error {
	if c.IsProxyTrusted() {
		if sent := c.Get(fiber.HeaderXRequestID); looksLikeRequestID(sent) {
			c.Locals(proxyRequestIDLocal{}, strings.Clone(sent))
		}
	}
	c.Request().Header.Del(fiber.HeaderXRequestID)
	return assignRequestID(c)
}

// requestID is the request's id: a string of its own (made by
// newRequestID, never a view into the request, whose header requestIDs
// removes first), so it may be kept past the request.
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDLocal).(string)
	return id
}

// proxyRequestID is the trusted proxy's id for the request as a log
// attribute, or none (an empty Attr, which slog leaves out).
func proxyRequestID(c *fiber.Ctx) slog.Attr {
	if id, _ := c.Locals(proxyRequestIDLocal{}).(string); id != "" {
		return slog.String("proxy_request_id", id)
	}
	return slog.Attr{}
}

// looksLikeRequestID accepts what proxies make (nginx's 32 hex digits, a
// UUID, ...): up to 64 letters, digits, '-', '_' and '.', nothing a log
// reader could mistake for more.
func looksLikeRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// clientIPs finds the browser's address behind trusted load balancers: the
// right-most address in the proxy header that is not itself a trusted
// proxy. A header from any other peer is ignored, since anyone can send
// one. Only logs need it, so it is worked out only when asked.
type clientIPs struct {
	header  string
	trusted []netip.Prefix
}

func (p clientIPs) isTrusted(a netip.Addr) bool {
	for _, prefix := range p.trusted {
		if prefix.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr returns a function giving a request's client address as the
// site sees it: header is believed only from the trusted proxies.
func ClientAddr(header string, trusted []netip.Prefix) func(*fiber.Ctx) string {
	return clientIPs{header: header, trusted: trusted}.of
}

func (p clientIPs) of(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return ""
	}
	client := peer.Unmap()
	if p.header == "" || !p.isTrusted(client) {
		return client.String()
	}
	hops := strings.Split(c.Get(p.header), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = hop.Unmap()
		if !p.isTrusted(client) {
			break
		}
	}
	return client.String()
}
