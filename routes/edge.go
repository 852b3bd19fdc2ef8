package routes

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// contentSecurityPolicy allows only the site's own files: no inline script,
// no framing, forms only to this site.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// permissionsPolicy turns off the browser features a catalog never uses,
// for the site and anything it might be made to embed.
const permissionsPolicy = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

// securityHeaders are the headers every answer carries, as key and value
// in canonical form, so that setting them skips fasthttp's normalizing.
// Strict-Transport-Security is the TLS terminator's to send (ingress-nginx
// does by default): this process only ever speaks plain HTTP.
var securityHeaders = [][2][]byte{
	{[]byte("Content-Security-Policy"), []byte(contentSecurityPolicy)},
	{[]byte(fiber.HeaderXContentTypeOptions), []byte("nosniff")},
	{[]byte(fiber.HeaderReferrerPolicy), []byte("same-origin")},
	{[]byte(fiber.HeaderXFrameOptions), []byte("DENY")},
	{[]byte(fiber.HeaderPermissionsPolicy), []byte(permissionsPolicy)},
	{[]byte("Cross-Origin-Opener-Policy"), []byte("same-origin")},
	{[]byte(fiber.HeaderCrossOriginResourcePolicy), []byte("same-origin")},
}

// setSecurityHeaders gives a response the headers every answer carries.
func setSecurityHeaders(h *fasthttp.ResponseHeader) {
	for _, kv := range securityHeaders {
		h.SetCanonical(kv[0], kv[1])
	}
}

// routeRefused labels, in the metrics, requests answered before routing:
// malformed or oversized requests, timeouts, unknown methods.
const routeRefused = "refused"

// errUnknownMethod is a method Fiber does not route at all ("FOO").
var errUnknownMethod = errors.New("unknown method")

// ErrOverConnectionCap is what app hands the edge for a connection over
// the replica's cap: it is answered with the 503 page, counted, and logged
// once per floodLogEvery with the number since, never a line each.
var ErrOverConnectionCap = &fiber.Error{Code: fiber.StatusServiceUnavailable, Message: "over the connection cap"}

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
func guardEdge(app *fiber.App, m *Metrics, logger *slog.Logger, draining *atomic.Bool) {
	server := app.Server()
	overCap := newFloodLog(logger, slog.LevelWarn, "connections over the cap refused")
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
		code := ctx.Response.StatusCode()
		m.requests.WithLabelValues(routeRefused, methodLabel(string(ctx.Method())),
			strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		if errors.Is(err, ErrOverConnectionCap) {
			m.overCap.Inc()
			overCap.note(nil)
		}
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			logger.Debug("request refused", "status", code, "request_id", id,
				"client_ip", ctx.RemoteIP().String(), "err", err.Error())
		}
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

// floodLogEvery is the most often a floodLog writes.
const floodLogEvery = time.Second

// floodLog logs an event that comes in floods when it comes at all (a
// connection over the cap, a page load refused, a page while MySQL is
// down): the first at once, then at most one line per floodLogEvery with
// how many came since and the last one's error, so a flood fills neither
// the log nor the disk under it and the count is never lost. The metrics
// count each one.
type floodLog struct {
	logger  *slog.Logger
	level   slog.Level
	msg     string
	mu      sync.Mutex
	pending int64 // events not yet in a line
	last    error // the last event's error, if it had one
	armed   bool  // a line is due at the end of the interval
}

func newFloodLog(logger *slog.Logger, level slog.Level, msg string) *floodLog {
	return &floodLog{logger: logger, level: level, msg: msg}
}

// note counts one event, err its error or nil.
func (l *floodLog) note(err error) {
	l.mu.Lock()
	l.pending++
	if err != nil {
		l.last = err
	}
	if l.armed {
		l.mu.Unlock()
		return
	}
	l.armed = true
	l.mu.Unlock()
	l.flush()
}

// flush writes the events since the last line, if any, and arms the next.
func (l *floodLog) flush() {
	l.mu.Lock()
	n, last := l.pending, l.last
	l.pending, l.last = 0, nil
	l.armed = n > 0
	l.mu.Unlock()
	if n == 0 {
		return
	}
	attrs := []any{"count", n, "interval", floodLogEvery.String()}
	if last != nil {
		attrs = append(attrs, "last_err", last)
	}
	l.logger.Log(context.Background(), l.level, l.msg, attrs...)
	time.AfterFunc(floodLogEvery, l.flush)
}
