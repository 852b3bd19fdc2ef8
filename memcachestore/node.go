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
	// backoffMin and backoffMax bound how long a failed node is skipped
	// before one operation is let through to probe it again.
	backoffMin = 250 * time.Millisecond
	backoffMax = 5 * time.Second

	// timeoutsToTrip is how many timeouts in a row take a node out. A
	// refused or dropped connection does at once; a timeout may be a busy
	// machine answering late once, which must not cost a node's keys for
	// the whole back-off.
	timeoutsToTrip = 3

	// lookupTimeout bounds one DNS lookup of a server name.
	lookupTimeout = 2 * time.Second
)

// node is one memcached server: its own gomemcache client (so replicas can
// be addressed one by one) and its back-off state.
type node struct {
	name   string
	client *memcache.Client
	pipe   *pipe // connections for GetAndIncrement

	// failing is the lock-free fast path: false means healthy, go ahead.
	failing atomic.Bool
	// timeouts counts consecutive timeouts of a healthy node.
	timeouts atomic.Int32

	mu       sync.Mutex
	failures int       // consecutive failed probes, 0 when healthy
	retryAt  time.Time // skip the node until then
	probing  bool      // one operation is probing the node now
}

// acquire admits an operation on n. A failing node admits one probe once
// its back-off has passed and fails everything else fast.
func (n *node) acquire(now time.Time) (probe bool, err error) {
	if !n.failing.Load() {
		return false, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.failures == 0:
		return false, nil
	case n.probing || now.Before(n.retryAt):
		return false, fmt.Errorf("%s: %w (skipped for %v after %d failures)",
			n.name, ErrUnavailable, backoff(n.failures), n.failures)
	}
	n.probing = true
	return true, nil
}

// release records the outcome of an operation admitted by acquire. Any
// answer from memcached, even a miss, proves the node up. A transport
// failure starts or extends the back-off, but only from the first failure
// or a probe: operations that were already in flight when the node went
// down must not each double it.
func (n *node) release(probe bool, err error, now time.Time) {
	down := err != nil && isTransport(err)
	if !down && n.timeouts.Load() != 0 {
		n.timeouts.Store(0)
	}
	if down && !probe && !n.failing.Load() && isTimeout(err) && n.timeouts.Add(1) < timeoutsToTrip {
		return // a late answer or two: not yet a dead node
	}
	if !down && !probe && !n.failing.Load() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if probe {
		n.probing = false
	}
	switch {
	case !down:
		n.failures = 0
		n.failing.Store(false)
	case probe || n.failures == 0:
		n.timeouts.Store(0)
		n.failures++
		n.retryAt = now.Add(backoff(n.failures))
		n.failing.Store(true)
	}
}

// reset forgets n's failures, e.g. when it moved to a new address.
func (n *node) reset() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failures = 0
	n.failing.Store(false)
}

// backoff is 250ms after the first failure, doubling up to 5s.
func backoff(failures int) time.Duration {
	d := backoffMin
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
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
	case isTransport(err):
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
// and back-off. A name that fails to resolve keeps its last address.
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
		r.nodes[i].client.Close() // idle connections to the old address; the client stays usable
		r.nodes[i].reset()
		r.nodes[i].pipe.close() // connections to the old address
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
