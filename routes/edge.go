package routes

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// contentSecurityPolicy allows only the site's own files: no inline script,
// no framing, forms only to this site.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// setSecurityHeaders gives a response the headers every answer carries.
func setSecurityHeaders(h *fasthttp.ResponseHeader) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	h.Set(fiber.HeaderReferrerPolicy, "same-origin")
	h.Set(fiber.HeaderXFrameOptions, "DENY")
}

// routeRefused labels, in the metrics, requests answered before routing:
// malformed or oversized requests, timeouts, unknown methods.
const routeRefused = "refused"

// errUnknownMethod is a method Fiber does not route at all ("FOO").
var errUnknownMethod = errors.New("unknown method")

// guardEdge wraps the fasthttp server under the Fiber app, so that the
// answers fasthttp and Fiber make before any route runs (400, 408, 413,
// 431, an unknown method, a refused Expect: 100-continue) are pages from
// the one error handler, carry the security headers and a request id of
// their own, end the connection and are counted. Every routed
// answer gets the security headers here too, so no path can miss them.
//
// Once draining starts, every answer ends its connection: a keep-alive
// client then opens its next one through the load balancer, to a replica
// that stays, instead of sending it on a connection this one is about to
// close (which the client sees as a dropped request).
func guardEdge(app *fiber.App, m *Metrics, draining *atomic.Bool) {
	server := app.Server()
	server.CloseOnShutdown = true
	routed, fiberErrors := server.Handler, server.ErrorHandler
	methods := app.Config().RequestMethods

	refuse := func(ctx *fasthttp.RequestCtx, err error) {
		start := time.Now()
		ctx.Response.Reset()
		// No middleware ran to name the request: it is named here, for
		// the header and the error handler's log line.
		id := newRequestID()
		ctx.SetUserValue(requestIDLocal, id)
		var status *fiber.Error
		if errors.As(err, &status) {
			// A status decided before routing (app's connection cap) goes
			// to the error handler as it is.
			c := app.AcquireCtx(ctx)
			_ = app.ErrorHandler(c, status)
			app.ReleaseCtx(c)
		} else {
			fiberErrors(ctx, err) // maps fasthttp's errors to statuses, then errorHandler
		}
		setSecurityHeaders(&ctx.Response.Header)
		ctx.Response.Header.Set(fiber.HeaderXRequestID, id)
		ctx.Response.Header.Set(fiber.HeaderCacheControl, cacheNever)
		// A request the server could not make sense of says nothing
		// reliable about where the next one starts.
		ctx.SetConnectionClose()
		m.requests.WithLabelValues(routeRefused, methodLabel(string(ctx.Method())),
			strconv.Itoa(ctx.Response.StatusCode())).Observe(time.Since(start).Seconds())
	}
	server.ErrorHandler = refuse
	// A client that asks before sending a body too large hears 413 at
	// once instead of being invited to send it.
	server.ExpectHandler = func(ctx *fasthttp.RequestCtx) int {
		if ctx.Request.Header.ContentLength() > server.MaxRequestBodySize {
			refuse(ctx, fasthttp.ErrBodyTooLarge)
			return fasthttp.StatusRequestEntityTooLarge
		}
		return fasthttp.StatusContinue
	}
	server.Handler = func(ctx *fasthttp.RequestCtx) {
		if !isOneOf(ctx.Method(), methods) {
			refuse(ctx, errUnknownMethod)
			return
		}
		setSecurityHeaders(&ctx.Response.Header)
		if draining.Load() {
			ctx.SetConnectionClose()
		}
		if ctx.IsHead() {
			// HEAD is answered as GET with the body left off, so its
			// headers, Content-Length included, are GET's.
			ctx.Request.Header.SetMethod(fiber.MethodGet)
			ctx.SetUserValue(headLocal{}, true)
			routed(ctx)
			ctx.Request.Header.SetMethod(fiber.MethodHead)
			ctx.Response.SkipBody = true
			return
		}
		routed(ctx)
	}
}

// headLocal marks a HEAD request being served as GET.
type headLocal struct{}

// isOneOf reports whether method is in methods, without allocating.
func isOneOf(method []byte, methods []string) bool {
	for _, m := range methods {
		if string(method) == m {
			return true
		}
	}
	return false
}
