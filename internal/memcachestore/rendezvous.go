package memcachestore

import (
	"fmt"
	"net"
	"sync/atomic"

	"github.com/bradfitz/gomemcache/memcache"
)

// Rendezvous is a memcache.ServerSelector using rendezvous (highest random
// weight) hashing: every server scores every key and the highest score
// owns it. Adding a fourth server to three moves only the keys the new
// server wins, about a quarter, where gomemcache's default ServerList
// (crc32 modulo the server count) moves about three quarters, logging out
// most users whenever the memcached tier is resized.
//
// Scores hash the configured server names ("memcached-0.memcached:11211"),
// not resolved IPs, so a pod that restarts with a new IP keeps its keys.
// The set of names is fixed; only their addresses change.
type Rendezvous struct {
	names []string
	seeds []uint64

	// addrs[i] is names[i]'s current address, nil while unresolved. The
	// slice is never modified in place: a change stores a new one.
	addrs atomic.Pointer[[]net.Addr]
}

var _ memcache.ServerSelector = (*Rendezvous)(nil)

// NewRendezvous returns a selector over servers (host:port) for a plain
// gomemcache client (memcache.NewFromSelector), resolving each name once,
// now; it is an error if any fails to resolve. Storage builds its own ring
// and keeps re-resolving the names.
func NewRendezvous(servers ...string) (*Rendezvous, error) {
	if len(servers) == 0 {
		return nil, memcache.ErrNoServers
	}
	r := newRing(servers)
	addrs := make([]net.Addr, len(servers))
	for i, s := range servers {
		if err := checkServer(s); err != nil {
			return nil, err
		}
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			return nil, err
		}
		addrs[i] = staticAddr(a.String())
	}
	r.addrs.Store(&addrs)
	return r, nil
}

// newRing returns a Rendezvous over names with no address resolved yet.
func newRing(names []string) *Rendezvous {
	r := &Rendezvous{names: names, seeds: make([]uint64, len(names))}
	for i, n := range names {
		r.seeds[i] = mix64(fnv64a(n))
	}
	addrs := make([]net.Addr, len(names))
	r.addrs.Store(&addrs)
	return r
}

// PickServer returns the address of the server that owns key.
func (r *Rendezvous) PickServer(key string) (net.Addr, error) {
	var top [1]int
	rank(key, r.seeds, top[:])
	return r.addr(top[0])
}

// Each calls f with every server's address, stopping at the first error.
func (r *Rendezvous) Each(f func(net.Addr) error) error {
	for i := range r.names {
		a, err := r.addr(i)
		if err != nil {
			return err
		}
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

// addr returns server i's current address.
func (r *Rendezvous) addr(i int) (net.Addr, error) {
	if a := (*r.addrs.Load())[i]; a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("%s is not resolved: %w", r.names[i], memcache.ErrNoServers)
}

// rank fills out with the indexes of the len(out) servers scoring highest
// for key, best first. Ties (a 2^-64 chance) go to the lower index.
func rank(key string, seeds []uint64, out []int) {
	var buf [maxReplicas]uint64
	scores := buf[:0]
	if len(out) > len(buf) {
		scores = make([]uint64, 0, len(out))
	}
	h := fnv64a(key)
	for i, seed := range seeds {
		sc := mix64(h ^ seed)
		// Insert into the sorted top list if it beats its last entry.
		pos := len(scores)
		for pos > 0 && sc > scores[pos-1] {
			pos--
		}
		if pos >= len(out) {
			continue
		}
		if len(scores) < len(out) {
			scores = append(scores, 0)
		}
		copy(scores[pos+1:], scores[pos:len(scores)-1])
		copy(out[pos+1:len(scores)], out[pos:len(scores)-1])
		scores[pos], out[pos] = sc, i
	}
}

// fnv64a is FNV-1a over s, without allocating.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is MurmurHash3's 64-bit finalizer: it spreads every input bit over
// the output so that h^seed scores are independent across servers.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// staticAddr is a resolved "ip:port" whose String gomemcache calls on every
// operation (it keys its connection pool), so it is computed once.
type staticAddr string

func (staticAddr) Network() string  { return "tcp" }
func (a staticAddr) String() string { return string(a) }

// nodeSelector points a per-node gomemcache client at one server of the
// ring, following its address as it is re-resolved.
type nodeSelector struct {
	ring  *Rendezvous
	index int
}

func (s nodeSelector) PickServer(string) (net.Addr, error) { return s.ring.addr(s.index) }

func (s nodeSelector) Each(f func(net.Addr) error) error {
	a, err := s.ring.addr(s.index)
	if err != nil {
		return err
	}
	return f(a)
}
