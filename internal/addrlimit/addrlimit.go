// Package addrlimit rations an action per client address with a token
// bucket each: here, the new sessions a site stores, so that one address
// cannot fill memcached with sessions and evict everybody else's.
//
// The buckets are golang.org/x/time/rate limiters kept in a bounded LRU
// (hashicorp/golang-lru), so a flood from many addresses costs a fixed
// amount of memory: an address pushed out of the LRU starts again with a
// full bucket, which is the price of the bound. IPv6 addresses are counted
// by their /64, the block one subscriber usually gets.
package addrlimit

import (
	"net/netip"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Limiter allows each address burst actions at once and perMinute a
// minute after that. It is safe for concurrent use.
type Limiter struct {
	every time.Duration
	burst int
	now   func() time.Time // a fake clock in tests

	mu      sync.Mutex // makes "look up or add" one step
	buckets *lru.Cache[netip.Addr, *rate.Limiter]
}

// New returns a Limiter remembering at most addresses addresses. perMinute,
// burst and addresses must be at least 1.
func New(perMinute, burst, addresses int) (*Limiter, error) {
	c, err := lru.New[netip.Addr, *rate.Limiter](addresses)
	if err != nil {
		return nil, err
	}
	return &Limiter{every: time.Minute / time.Duration(max(perMinute, 1)), burst: max(burst, 1), buckets: c, now: time.Now}, nil
}

// Allow reports whether addr may act now, and if so takes a token. An
// address that does not parse (no client address known) shares one bucket
// with every other such request.
func (l *Limiter) Allow(addr string) bool {
	return l.bucket(key(addr)).AllowN(l.now(), 1)
}

func (l *Limiter) bucket(k netip.Addr) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets.Get(k); ok {
		return b
	}
	b := rate.NewLimiter(rate.Every(l.every), l.burst)
	l.buckets.Add(k, b)
	return b
}

// key is the bucket of addr: the address itself for IPv4, its /64 for IPv6.
func key(addr string) netip.Addr {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
