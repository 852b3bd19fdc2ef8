package memcachestore

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// errPoolBusy is returned when every connection to a node stayed in use for
// a whole timeout. It wraps ErrUnavailable, so callers degrade as for a
// down node, but it says nothing about the node's health.
var errPoolBusy = fmt.Errorf("all connections busy: %w", ErrUnavailable)

// pool is a node's one set of connections, shared by gomemcache's
// operations and the pipelined reads: at most size() of them, ever.
// Each slot is one connection's worth of the cap: a gomemcache client that
// keeps at most one idle connection (MaxIdleConns 1), lent to one
// operation at a time, so the client never holds a second one; the
// pipeline speaks on that same connection. gomemcache's own free list thus
// is the pool, cut into slots, and needs no second pool beside it.
//
// Free slots whose connection is open (warm) are lent before those without
// (cold): a connection is dialled only when every open one is in use, so a
// node holds about as many connections as its peak of operations in
// flight, not the cap. A plain queue would lend every slot in turn and,
// under steady load, open all of them on every replica.
type pool struct {
	warm, cold chan *slot
	timeout    time.Duration

	// gen is bumped when a connection of the current generation breaks:
	// the connections dialled before (all of them dead when memcached
	// restarted) are closed when next taken, instead of each failing one
	// request in turn.
	gen atomic.Uint64
}

// slot is one connection of a pool, used by one operation at a time.
type slot struct {
	mc   *memcache.Client
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	addr func() (net.Addr, error)
	gen  uint64

	nc        *slotConn // the open connection, nil when there is none
	idleSince time.Time // when it was last given back
}

// staleCheckAfter is how long a connection may sit idle before it is
// looked at (peerClosed) when lent again. Under load connections come back
// far more often, so the look, a system call, is made only by a quiet pool.
const staleCheckAfter = 10 * time.Millisecond

// slotConn is a slot's connection; closing it (gomemcache does after an
// error) leaves the slot empty.
type slotConn struct {
	net.Conn
	s      *slot
	closed bool
}

func (c *slotConn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if c.s.nc == c {
		c.s.nc = nil
	}
	return c.Conn.Close()
}

// newPool returns a pool of size connections to the server addr returns,
// dialled with dial, each with the given socket timeout.
func newPool(size int, timeout time.Duration, sel memcache.ServerSelector, addr func() (net.Addr, error),
	dial func(ctx context.Context, network, addr string) (net.Conn, error)) *pool {
	p := &pool{warm: make(chan *slot, size), cold: make(chan *slot, size), timeout: timeout}
	for range size {
		s := &slot{mc: memcache.NewFromSelector(sel), dial: dial, addr: addr}
		s.mc.Timeout = timeout
		s.mc.MaxIdleConns = 1
		s.mc.DialContext = s.dialContext
		p.cold <- s
	}
	return p
}

// size is how many connections the pool may have.
func (p *pool) size() int { return cap(p.cold) }

// get takes a slot, a warm one if any is free, waiting at most the timeout
// for one to be free.
func (p *pool) get() (*slot, error) {
	s, err := p.take()
	if err != nil {
		return nil, err
	}
	if g := p.gen.Load(); s.gen != g {
		s.close()
		s.gen = g
	} else if s.nc != nil && time.Since(s.idleSince) > staleCheckAfter && s.nc.peerClosed() {
		s.close()
	}
	return s, nil
}

func (p *pool) take() (*slot, error) {
	select {
	case s := <-p.warm:
		return s, nil
	default:
	}
	select {
	case s := <-p.warm:
		return s, nil
	case s := <-p.cold:
		return s, nil
	default:
	}
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case s := <-p.warm:
		return s, nil
	case s := <-p.cold:
		return s, nil
	case <-t.C:
		return nil, errPoolBusy
	}
}

// give puts a free slot where take looks for it.
func (p *pool) give(s *slot) {
	if s.nc != nil {
		s.idleSince = time.Now()
		p.warm <- s
	} else {
		p.cold <- s
	}
}

// put gives s back. err is the outcome of its operation: put reports
// true (the node looks down) for a transport failure on a connection of
// the current generation. A broken connection (refused, reset, closed:
// memcached restarted) also retires every connection dialled so far; a
// timeout does not, since the others are sound and redialling them all
// would only add load to a busy machine.
func (p *pool) put(s *slot, err error) (failed bool) {
	if err != nil && isTransport(err) {
		s.close() // gomemcache closed its connection; the pipeline's may be open
		if failed = s.gen == p.gen.Load(); failed && !isTimeout(err) {
			p.gen.CompareAndSwap(s.gen, s.gen+1)
		}
	}
	p.give(s)
	return failed
}

// closeIdle closes the connections of the slots not in use; those in use
// are closed when next taken.
func (p *pool) closeIdle() {
	p.gen.Add(1) // the ones in use are closed when next taken
	for range p.size() {
		select {
		case s := <-p.warm:
			s.close()
			p.cold <- s
		default:
			return
		}
	}
}

// dialContext is the slot client's DialContext. The pipeline may have
// dialled the slot's connection already: gomemcache gets that one.
func (s *slot) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.nc != nil {
		if s.nc.RemoteAddr().String() == addr {
			return s.nc, nil
		}
		s.nc.Close()
	}
	nc, err := s.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.nc = &slotConn{Conn: nc, s: s}
	return s.nc, nil
}

// conn returns the slot's connection, dialling it if there is none.
func (s *slot) conn() (*slotConn, error) {
	if s.nc == nil {
		addr, err := s.addr()
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.mc.Timeout)
		defer cancel()
		if _, err := s.dialContext(ctx, addr.Network(), addr.String()); err != nil {
			return nil, err
		}
	}
	return s.nc, nil
}

// close closes the slot's connection, and the client's copy of it.
func (s *slot) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	_ = s.mc.Close() // drops the closed connection from its free list
}
