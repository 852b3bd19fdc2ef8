package routes

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// contentSecurityPolicy allows only the site's own files: no inline script,
// no framing, forms only to this site.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func securityHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "same-origin")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
	return c.Next()
}

// requestDeadline gives every request's queries and cache calls a deadline:
// Fiber v2's UserContext has none of its own.
func requestDeadline(timeout time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
}

// newRequestID returns a short random id for correlating log lines.
func newRequestID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals("requestid").(string)
	return id
}

// clientIP finds the browser's address behind trusted load balancers: the
// right-most address in the proxy header that is not itself a trusted
// proxy. A header from any other peer is ignored, since anyone can send
// one. The result is kept for logs under "client_ip".
func clientIP(header string, trusted []netip.Prefix) fiber.Handler {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(c *fiber.Ctx) error {
		ip := c.Context().RemoteIP().String()
		if peer, err := netip.ParseAddr(ip); err == nil && header != "" && isTrusted(peer) {
			hops := strings.Split(c.Get(header), ",")
			for i := len(hops) - 1; i >= 0; i-- {
				hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
				if err != nil {
					break
				}
				ip = hop.String()
				if !isTrusted(hop) {
					break
				}
			}
		}
		c.Locals(clientIPKey{}, ip)
		return c.Next()
	}
}

type clientIPKey struct{}

// ClientIP returns the address clientIP found for this request.
func ClientIP(c *fiber.Ctx) string {
	ip, _ := c.Locals(clientIPKey{}).(string)
	return ip
}
