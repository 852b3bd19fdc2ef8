package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

const (
	// probeEvery is how often a down node is asked whether it is back.
	// A refused dial costs microseconds; a hung node costs the prober, not
	// the pages, one timeout per try.
	probeEvery = 250 * time.Millisecond

	// lookupTimeout bounds one DNS lookup of a server name.
	lookupTimeout = 2 * time.Second
)

// errDown is returned, without any network traffic, by operations on a node
// that failed and has not answered a probe since.
var errDown = errors.New("down, waiting for it to answer a probe")

// node is one memcached server: its pool of connections and its health.
// A node has at most its pool's connections open, plus one while a probe
// asks it whether it is back.
//
// The first transport failure (a refused, dropped or timed-out connection)
// takes the node out at once, so a page pays at most one timeout for a
// hung memcached. A broken connection also retires every connection
// dialled so far, so a restarted memcached's dead connections are not
// found out one request at a time. A background
// prober then asks the node for its version every probeEvery and puts it
// back on the first answer: a node that was only slow once is back after
// one round trip, a restarted one within probeEvery of its return.
type node struct {
	name   string
	pool   *pool
	prober *memcache.Client // the probe's client, one connection at a time
	owed   owed             // the counts it missed while down (Replicas: 2)
	batch  batcher          // the pipelined reads (see pipeline.go)

	// down is the lock-free fast path: false means healthy, go ahead.
	down atomic.Bool

	mu      sync.Mutex
	probing bool            // a prober runs
	ctx     context.Context // ends the prober when the Storage closes
	wg      *sync.WaitGroup // the Storage waits for its probers on Close
	probed  func()          // test hook: called after each probe
}

// admit fails fast while n is down.
func (n *node) admit() error {
	if n.down.Load() {
		return fmt.Errorf("%s: %w: %w", n.name, ErrUnavailable, errDown)
	}
	return nil
}

// do runs fn on one of n's connections, unless n is down, and records the
// outcome. Errors are fn's, unwrapped. The slot goes back even if fn
// panics.
func (n *node) do(fn func(s *slot) error) (err error) {
	if err := n.admit(); err != nil {
		return err
	}
	s, err := n.pool.get()
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	returned := false
	defer func() {
		if !returned {
			s.close() // fn panicked: what is left unread on it is unknown
		}
		if n.pool.put(s, err) {
			n.fail()
		}
	}()
	err = fn(s)
	returned = true
	return err
}

// fail takes n out and starts its prober, unless one runs.
func (n *node) fail() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down.Store(true)
	if n.probing || n.ctx.Err() != nil {
		return
	}
	n.probing = true
	n.wg.Add(1)
	go n.probe()
}

// probe asks n for its version until it answers (then n is back) or the
// Storage closes.
func (n *node) probe() {
	defer n.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			n.mu.Lock()
			n.probing = false
			n.mu.Unlock()
			return
		case <-t.C:
		}
		up := n.ping() == nil
		if up {
			n.mu.Lock()
			n.probing = false
			n.down.Store(false)
			n.mu.Unlock()
		}
		if n.probed != nil {
			n.probed()
		}
		if up {
			return
		}
		t.Reset(probeEvery)
	}
}

// owed is, per counter, the count a node's copy must reach: the highest
// count returned while the node certainly missed increments (it was
// skipped while down, or had no free connection, while the other copy
// counted them). Its next increment of that counter raises it to one more.
// A count, not the increments missed: the copy may have been raised
// meanwhile by another replica of the app, which cannot know what this
// one owes, and those increments would be counted twice.
type owed struct {
	any atomic.Bool // the fast path: nothing owed, no lock
	mu  sync.Mutex
	m   map[string]uint64
}

// maxOwed bounds the counters remembered per node (~100 bytes each); a
// node down for long misses more, and those copies stay short (see
// Storage).
const maxOwed = 10_000

// add remembers that k's copy must reach count (0: nothing owed).
func (o *owed) add(k string, count uint64) {
	if count == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[string]uint64)
	}
	if _, ok := o.m[k]; ok || len(o.m) < maxOwed {
		o.m[k] = max(o.m[k], count)
		o.any.Store(true)
	}
}

// take returns the count k's copy must reach, 0 if none, and forgets it.
func (o *owed) take(k string) uint64 {
	if !o.any.Load() {
		return 0
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.m[k]
	delete(o.m, k)
	o.any.Store(len(o.m) > 0)
	return n
}

// moved drops n's connections to its old address and gives the new one a
// chance at once, even if the old one was down.
func (n *node) moved() {
	n.pool.closeIdle()
	n.down.Store(false)
}

// ping asks n for its version over a connection of its own, closed after:
// the pool's may all be held by operations that started before the node
// went down, and the node must not stay out of use while they finish.
func (n *node) ping() error {
	defer n.prober.Close()
	return n.prober.Ping()
}

// isTransport reports whether err means memcached could not be reached or
// did not answer, as opposed to an answer (a miss, "not stored", a client
// error) that proves it is up.
func isTransport(err error) bool {
	var netErr net.Error
	var cte *memcache.ConnectTimeoutError
	switch {
	case errors.Is(err, memcache.ErrCacheMiss),
		errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrCASConflict),
		errors.Is(err, memcache.ErrMalformedKey):
		return false
	case errors.Is(err, ErrUnavailable),
		errors.As(err, &netErr), errors.As(err, &cte),
		errors.Is(err, memcache.ErrNoServers),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

// isTimeout reports whether err is a timeout rather than a refused or
// broken connection.
func isTimeout(err error) bool {
	var netErr net.Error
	var cte *memcache.ConnectTimeoutError
	return errors.As(err, &cte) || (errors.As(err, &netErr) && netErr.Timeout())
}

// nodeError names the node in err and marks transport failures with
// ErrUnavailable.
func nodeError(n *node, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnavailable), errors.Is(err, memcache.ErrCacheMiss):
		return err // misses are common and need no context
	case isTransport(err), errors.Is(err, errProtocol):
		return fmt.Errorf("%s: %w: %w", n.name, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", n.name, err)
}

// resolver re-resolves server names so that a memcached pod that restarts
// with a new IP is followed; gomemcache resolves once, at SetServers.
type resolver struct {
	ring   *Rendezvous
	nodes  []*node
	lookup func(ctx context.Context, host string) ([]string, error)
}

// resolveAll looks every name up and, if any address changed, swaps in the
// new address list at once and drops the moved nodes' idle connections
// (and gives them a chance at once). A name that fails to resolve keeps its last address.
// It returns the number of names that have an address.
func (r *resolver) resolveAll(ctx context.Context) (resolved int) {
	cur := *r.ring.addrs.Load()
	next := slices.Clone(cur)
	var moved []int
	for i, name := range r.ring.names {
		a, err := r.resolve(ctx, name)
		if err == nil && (cur[i] == nil || cur[i].String() != a.String()) {
			next[i] = a
			moved = append(moved, i)
		}
		if next[i] != nil {
			resolved++
		}
	}
	if len(moved) == 0 {
		return resolved
	}
	r.ring.addrs.Store(&next)
	for _, i := range moved {
		r.nodes[i].moved()
	}
	return resolved
}

// resolve returns name's address. When a name has several IPs the lowest
// is used, so that the choice does not flap between lookups.
func (r *resolver) resolve(ctx context.Context, name string) (net.Addr, error) {
	host, port, err := net.SplitHostPort(name)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return staticAddr(net.JoinHostPort(ip.String(), port)), nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	hosts, err := r.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	slices.SortFunc(ips, func(a, b net.IP) int { return slices.Compare(a.To16(), b.To16()) })
	return staticAddr(net.JoinHostPort(ips[0].String(), port)), nil
}

// needsLookups reports whether any name is a host name rather than an IP.
func (r *resolver) needsLookups() bool {
	for _, name := range r.ring.names {
		host, _, err := net.SplitHostPort(name)
		if err == nil && net.ParseIP(host) == nil {
			return true
		}
	}
	return false
}
