package routes

import (
	"hash/crc32"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The caching policy, applied to every routed answer once it is final
// (docs/architecture.md, "Caching"):
//
//   - an answer with per-browser content (a route marked perBrowser, or any
//     answer that sets a cookie) is "private, no-store" with "Vary: Cookie":
//     no shared cache may hand one browser's page to another;
//   - an answer that chose its own Cache-Control keeps it (the static
//     files: a year, immutable, under content-hashed names);
//   - a 5xx is "no-store": it says nothing about the page;
//   - anything else is the same for every browser: "no-cache" with a weak
//     ETag, so a cache may keep it but asks first, and a 304 answers when
//     the page has not changed.
const (
	cachePerBrowser = "private, no-store"
	cacheRevalidate = "no-cache"
	cacheNever      = "no-store"
)

type perBrowserLocal struct{}

// perBrowser marks a route whose answer depends on the browser's session:
// a visit count, a CSRF token, a page-size preference.
func perBrowser(c *fiber.Ctx) error {
	c.Locals(perBrowserLocal{}, true)
	return c.Next()
}

func applyCachePolicy(c *fiber.Ctx) {
	resp := c.Response()
	h := &resp.Header
	if c.Locals(perBrowserLocal{}) == true || setsCookie(c) {
		h.Set(fiber.HeaderCacheControl, cachePerBrowser)
		h.Add(fiber.HeaderVary, "Cookie")
		return
	}
	if len(h.Peek(fiber.HeaderCacheControl)) > 0 {
		return
	}
	status := resp.StatusCode()
	if status >= 500 {
		h.Set(fiber.HeaderCacheControl, cacheNever)
		return
	}
	h.Set(fiber.HeaderCacheControl, cacheRevalidate)
	if status != fiber.StatusOK || c.Method() != fiber.MethodGet { // HEAD is served as GET
		return
	}
	body := resp.Body()
	etag := `W/"` + strconv.Itoa(len(body)) + "-" + strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 36) + `"`
	h.Set(fiber.HeaderETag, etag)
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		resp.SetStatusCode(fiber.StatusNotModified)
		resp.ResetBody()
	}
}

func setsCookie(c *fiber.Ctx) bool {
	for range c.Response().Header.Cookies() {
		return true
	}
	return false
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110, 13.1.2).
func etagMatches(ifNoneMatch, etag string) bool {
	for tag := range strings.SplitSeq(ifNoneMatch, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}
