package app

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/routes"
)

// overCapReadTimeout is how long a connection over the cap has to send its
// request before it is dropped: its slot is one of few.
const overCapReadTimeout = 2 * time.Second

// overCapWriteTimeout bounds writing the 503 to a connection refused as it
// is accepted, which the accept loop waits for. A fresh connection's send
// buffer takes the page at once; this is for a peer that never reads.
const overCapWriteTimeout = 100 * time.Millisecond

// capConnections bounds the open connections of server on ln to limit.
// The next few (limit/16, at least 16) are read and answered with the
// site's 503 page, through the same edge as every request refused before
// routing, and closed; any beyond those get the same page as they are
// accepted, unread, and are closed, so past the cap a flood of idle
// connections costs a fixed amount of memory and every answer is the
// site's, with its request id. Call it before server starts listening.
func capConnections(server *fiber.App, ln net.Listener, limit int) net.Listener {
	spare := max(16, limit/16)
	srv := server.Server()
	capped := &capListener{Listener: ln, max: int64(limit), served: int64(limit + spare), refuse: srv.ErrorHandler}
	// fasthttp's own refusal (a short text 503) is only a backstop: a
	// connection leaves the listener's count as it closes, a moment
	// before its worker is free, so the pool is given room for that.
	srv.Concurrency = limit + 2*spare
	routed := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if c, ok := ctx.Conn().(*cappedConn); ok && c.overCap {
			srv.ErrorHandler(ctx, routes.ErrOverConnectionCap)
			return
		}
		routed(ctx)
	}
	return capped
}

// capListener counts the connections it has accepted that are still open.
type capListener struct {
	net.Listener
	max    int64 // served as usual
	served int64 // the cap plus the spare slots, read with a short deadline
	open   atomic.Int64
	refuse func(*fasthttp.RequestCtx, error) // the edge's: the site's error page
	ctxs   sync.Pool                         // *fasthttp.RequestCtx for answers made here
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.open.Add(1)
		if n > l.served {
			l.open.Add(-1)
			l.refuseAtOnce(c)
			continue
		}
		cc := &cappedConn{Conn: c, open: &l.open}
		if n > l.max {
			cc.overCap = true
			cc.deadline = time.Now().Add(overCapReadTimeout)
			_ = c.SetReadDeadline(cc.deadline)
		}
		return cc, nil
	}
}

// refuseAtOnce answers c with the edge's over-cap page without reading
// it, and closes it: a goroutine per connection is what the cap saves.
func (l *capListener) refuseAtOnce(c net.Conn) {
	ctx, _ := l.ctxs.Get().(*fasthttp.RequestCtx)
	if ctx == nil {
		ctx = new(fasthttp.RequestCtx)
	}
	ctx.Init2(c, nil, true)
	l.refuse(ctx, routes.ErrOverConnectionCap)
	_ = c.SetWriteDeadline(time.Now().Add(overCapWriteTimeout))
	_, _ = ctx.Response.WriteTo(c)
	_ = c.Close()
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.ResetUserValues()
	l.ctxs.Put(ctx)
}

// cappedConn leaves the count when it closes, once.
type cappedConn struct {
	net.Conn
	open      *atomic.Int64
	overCap   bool
	deadline  time.Time // an over-cap connection's last moment to send its request
	closeOnce sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.open.Add(-1) })
	return err
}

// SetReadDeadline keeps an over-cap connection's deadline: fasthttp sets
// its ReadTimeout (30s) before each request.
func (c *cappedConn) SetReadDeadline(t time.Time) error {
	if c.overCap && (t.IsZero() || t.After(c.deadline)) {
		t = c.deadline
	}
	return c.Conn.SetReadDeadline(t)
}
