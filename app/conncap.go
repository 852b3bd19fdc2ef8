package app

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// overCapReadTimeout is how long a connection over the cap has to send its
// request before it is dropped: its slot is one of few.
const overCapReadTimeout = 2 * time.Second

// capConnections bounds the open connections of server on ln to limit.
// The next few (limit/16, at least 16) are read and answered with the site's 503
// page, through the same edge as every request refused before routing,
// and closed; fasthttp refuses any beyond those at once with its own short
// 503 (Server.Concurrency), so past the cap a flood of idle connections
// costs a fixed amount of memory. Call it before server starts listening.
func capConnections(server *fiber.App, ln net.Listener, limit int) net.Listener {
	spare := max(16, limit/16)
	capped := &capListener{Listener: ln, max: int64(limit)}
	srv := server.Server()
	srv.Concurrency = limit + spare
	routed := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if c, ok := ctx.Conn().(*cappedConn); ok && c.overCap {
			srv.ErrorHandler(ctx, fiber.ErrServiceUnavailable)
			return
		}
		routed(ctx)
	}
	return capped
}

// capListener counts the connections it has accepted that are still open.
type capListener struct {
	net.Listener
	max  int64
	open atomic.Int64
}

func (l *capListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &cappedConn{Conn: c, open: &l.open}
	if l.open.Add(1) > l.max {
		cc.overCap = true
		cc.deadline = time.Now().Add(overCapReadTimeout)
		_ = c.SetReadDeadline(cc.deadline)
	}
	return cc, nil
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
