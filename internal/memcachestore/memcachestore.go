// Package memcachestore keeps the service's sessions in Memcached: it is a
// session.Store (get, set, delete, touch, an atomic counter and a
// read-and-count, the reads of concurrent pages pipelined) and a complete
// fiber.Storage (Reset included), plus a readiness ping. Fiber's session
// middleware sits on it like on any storage:
// session.New(session.Config{Storage: s}) with s from New.
//
// It is the project's own adapter rather than github.com/gofiber/storage/memcache
// (one gomemcache client, whose Reset flushes every server): it is built on
// github.com/bradfitz/gomemcache, with what a memcached tier in Kubernetes
// needs on top: rendezvous hashing (resizing moves few keys), periodic
// re-resolution of server names (StatefulSet pods change IP on restart),
// optional two-way replication, one capped pool of connections per server,
// and health tracking that stops a dead or hung node from costing every
// request a timeout (see node).
//
// Keys: memcached holds keys of at most 250 bytes with no spaces or control
// characters; KeyPrefix and the generation tag Reset moves ("0:", "1:",
// …) count against that. The session package's keys (at most 24 bytes)
// fit with any prefix under 200 bytes. Where a key goes
// is decided by Config.Place: the caller, who makes the keys, says which
// ones belong together.
package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

const (
	// MaxTimeout is the largest Timeout New accepts.
	MaxTimeout = 10 * time.Second

	// maxKeyLen is memcached's key length limit, prefix included.
	maxKeyLen = 250

	// maxRelativeExpiry is the largest expiry memcached reads as "seconds
	// from now"; larger values are read as an absolute Unix time.
	maxRelativeExpiry = 30 * 24 * 60 * 60

	// maxReplicas is the most copies of a key Storage keeps.
	maxReplicas = 2
)

var (
	// ErrUnavailable wraps every failure to reach a memcached server
	// (connection refused, timeout, connection dropped, a name that does
	// not resolve, a node skipped while it backs off), so callers can tell
	// "memcached is down" from other failures with errors.Is.
	ErrUnavailable = errors.New("memcached unavailable")

	// ErrInvalidKey is returned by writes whose key (with the prefix)
	// memcached cannot hold: longer than 250 bytes, or containing spaces
	// or control characters. Get never returns it: such a key simply is
	// not there.
	ErrInvalidKey = errors.New("invalid memcached key")

	// ErrTooLarge is returned by Set for a value over MaxItemSize.
	ErrTooLarge = errors.New("value too large for memcached")
)

// Config configures a Storage.
type Config struct {
	// Servers are host:port entries (see ParseServers).
	Servers []string

	// Timeout is the per-operation socket timeout, required: above 0 and
	// at most MaxTimeout. A session lookup sits on every request, so a hung
	// memcached must cost a request milliseconds. (The service's default
	// is in config.)
	Timeout time.Duration

	// MaxConns is the most connections open to each server at once, idle
	// or busy, required: a hard cap. An operation waits up to Timeout for
	// one to be free, then fails with ErrUnavailable. An operation holds
	// one until its goroutine has read the answer, which on a saturated
	// machine takes far longer than the round trip; memcached's
	// --conn-limit must cover it times the number of app replicas (see
	// deploy/README.md).
	MaxConns int

	// KeyPrefix namespaces every key in a memcached shared with other
	// apps, e.g. "ll:". It counts against memcached's 250-byte key limit.
	KeyPrefix string

	// ResolveEvery is how often server host names are resolved again;
	// zero or negative: never.
	ResolveEvery time.Duration

	// Replicas is how many servers hold each key: 1 (zero means 1) or 2.
	// See Storage for what 2 buys and costs.
	Replicas int

	// RepairTTL, with Replicas: 2, is the lifetime given to a copy that Get
	// finds missing and writes back (memcached does not tell the remaining
	// lifetime of the copy it read). Zero turns repair off. Callers storing
	// sessions pass the session lifetime.
	RepairTTL time.Duration

	// Place, if set, returns the part of a key (without KeyPrefix) that
	// decides which servers hold it; keys with the same placement live on
	// the same servers, which GetAndIncrement needs for its one round trip.
	// nil places each key by the whole key. Sessions pass session.Placement.
	Place func(key string) string

	// Observe, if set, is called after every operation with its name
	// ("get", "set", "delete", "touch", "increment", "ping", "reset"), the
	// error it returns (nil for a miss) and how long it took. It must be
	// cheap and safe for concurrent use.
	Observe func(op string, err error, d time.Duration)
}

// Storage is a fiber.Storage on memcached. It is safe for concurrent use.
//
// Keys are placed by rendezvous hashing over the configured server names.
// With Replicas: 2 each key lives on the two highest-ranked servers:
//   - Set, Delete and Touch go to both and succeed if either does.
//   - Get returns the first copy found: a node that is down (or backing
//     off) is skipped, and a miss on the first copy reads the second, so a
//     node that comes back empty loses no session, and a copy it was first
//     for is written back when read (RepairTTL). A copy it was second for
//     comes back only when the session is next written, so restart nodes
//     one at a time, a while apart. The price of reading the second copy:
//     a session deleted while one copy was unreachable can come back.
//   - Increment increments both and returns the larger value. A copy that
//     had to be created (its node restarted empty, or the key was evicted)
//     is raised to the other copy's value, so after a node restarts, the
//     other one dying does not send the count backwards (callers that
//     create both copies at the same moment can leave one a little high:
//     the raise counts increments still on their way). A copy that
//     certainly missed increments because its node was skipped (down) is
//     raised, at its next increment of that counter, to one more than the
//     count returned meanwhile (remembered for up to 10,000 counters per
//     node), not given the increments it missed: another replica of the
//     app may have raised it already, or the node may have come back
//     empty, and adding them would count them twice. One whose answer
//     timed out may or may not have landed and is not made up for; nor
//     are increments missed during a long outage beyond that bound: such a
//     copy stays short, which shows only if the other copy is lost before
//     the key expires.
//
// With Replicas: 1 a down node makes its keys fail with ErrUnavailable;
// keys are not moved elsewhere.
type Storage struct {
	ring      *Rendezvous
	nodes     []*node
	resolver  resolver
	replicas  int
	repairTTL time.Duration
	prefix    string
	place     func(key string) string
	observe   func(op string, err error, d time.Duration)

	// ns is prefix and the generation tag, the start of every data key;
	// Reset moves it (see generation.go).
	ns  atomic.Pointer[string]
	gen atomic.Uint64

	stop      context.CancelFunc // ends re-resolution, generation reads and the probers
	done      chan struct{}      // closed when re-resolution has ended
	followed  chan struct{}      // closed when generation reads have ended
	probers   sync.WaitGroup
	closeOnce sync.Once
}

// hooks are seams for tests; New uses the real network and clock.
type hooks struct {
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	probed       func() // called after each probe of a down node
	lookup       func(ctx context.Context, host string) ([]string, error)
	afterResolve func()        // called after each background resolution pass
	followEvery  time.Duration // how often the generation is read; 0: followEvery
}

// ParseServers splits a comma-separated "host:port, host:port" list.
// Entries are trimmed; an empty entry, a missing or invalid port, a
// duplicate, or anything that is not host:port is an error naming the
// entry.
func ParseServers(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, errors.New("memcached server list is empty")
	}
	var servers []string
	seen := make(map[string]bool)
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if err := checkServer(entry); err != nil {
			return nil, fmt.Errorf("memcached server entry %d: %w", i+1, err)
		}
		if seen[entry] {
			return nil, fmt.Errorf("memcached server entry %d: %q is listed twice", i+1, entry)
		}
		seen[entry] = true
		servers = append(servers, entry)
	}
	return servers, nil
}

// checkServer reports whether entry is a usable host:port.
func checkServer(entry string) error {
	if entry == "" {
		return errors.New("empty entry")
	}
	host, port, err := net.SplitHostPort(entry)
	if err != nil {
		return fmt.Errorf("%q is not host:port", entry)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", entry)
	}
	if strings.ContainsAny(host, " \t/@?#") {
		return fmt.Errorf("%q has an invalid host", entry)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has an invalid port %q", entry, port)
	}
	return nil
}

// New validates cfg, resolves the servers, reads the generation of the
// keys (see Reset) and returns a Storage. It does not fail when memcached
// cannot be reached: use Ping for that.
//
// A malformed server list is an error, and so is a list none of whose
// names resolves. A name that does not resolve yet while others do (a
// StatefulSet pod being re-created has no DNS record) is not: that node
// counts as down until a later resolution finds it.
func New(cfg Config) (*Storage, error) {
	return newStorage(cfg, hooks{})
}

func newStorage(cfg Config, h hooks) (*Storage, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, fmt.Errorf("memcachestore: %w", err)
	}
	if h.dial == nil {
		h.dial = (&net.Dialer{}).DialContext // the context bounds it
	}
	if h.lookup == nil {
		h.lookup = net.DefaultResolver.LookupHost
	}

	ring := newRing(slices.Clone(cfg.Servers)) // the caller may reuse its slice
	s := &Storage{
		ring:      ring,
		replicas:  cfg.Replicas,
		repairTTL: cfg.RepairTTL,
		prefix:    cfg.KeyPrefix,
		place:     cfg.Place,
		observe:   cfg.Observe,
		done:      make(chan struct{}),
	}
	loopCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	for i, name := range ring.names {
		// Each server's clients have a single-server selector, so that
		// replicas can be addressed one by one.
		sel := nodeSelector{ring: ring, index: i}
		p := newPool(cfg.MaxConns, cfg.Timeout, sel, func() (net.Addr, error) { return ring.addr(i) }, h.dial)
		prober := memcache.NewFromSelector(sel)
		prober.Timeout, prober.DialContext = cfg.Timeout, h.dial
		s.nodes = append(s.nodes, &node{name: name, pool: p, prober: prober, ctx: loopCtx, wg: &s.probers, probed: h.probed})
	}
	s.resolver = resolver{ring: ring, nodes: s.nodes, lookup: h.lookup}
	s.setGeneration(0)

	ctx, cancel := context.WithTimeout(context.Background(), 2*lookupTimeout)
	defer cancel()
	if s.resolver.resolveAll(ctx) == 0 {
		stop()
		return nil, fmt.Errorf("memcachestore: none of the servers %q resolves", cfg.Servers)
	}

	if cfg.ResolveEvery > 0 && s.resolver.needsLookups() {
		go s.resolveLoop(loopCtx, cfg.ResolveEvery, h.afterResolve)
	} else {
		close(s.done)
	}
	_ = s.readGeneration() // best effort: followGeneration tries again
	s.followed = make(chan struct{})
	go s.followGeneration(loopCtx, h.followEvery)
	return s, nil
}

// withDefaults validates cfg and fills in its defaults.
func (cfg *Config) withDefaults() error {
	if len(cfg.Servers) == 0 {
		return errors.New("no servers configured")
	}
	seen := make(map[string]bool)
	for i, s := range cfg.Servers {
		if err := checkServer(s); err != nil {
			return fmt.Errorf("server %d: %w", i+1, err)
		}
		if seen[s] {
			return fmt.Errorf("server %d: %q is listed twice", i+1, s)
		}
		seen[s] = true
	}
	if cfg.Timeout <= 0 || cfg.Timeout > MaxTimeout {
		return fmt.Errorf("timeout %v outside (0, %v]", cfg.Timeout, MaxTimeout)
	}
	if cfg.MaxConns <= 0 {
		return fmt.Errorf("MaxConns %d: must be at least 1", cfg.MaxConns)
	}
	if cfg.KeyPrefix != "" && !legalKey(cfg.KeyPrefix) {
		return fmt.Errorf("key prefix %q: %w", cfg.KeyPrefix, ErrInvalidKey)
	}
	switch {
	case cfg.Replicas == 0:
		cfg.Replicas = 1
	case cfg.Replicas < 0 || cfg.Replicas > maxReplicas:
		return fmt.Errorf("replicas %d: must be 1 or 2", cfg.Replicas)
	case cfg.Replicas > len(cfg.Servers):
		return fmt.Errorf("replicas %d needs at least %d servers, have %d", cfg.Replicas, cfg.Replicas, len(cfg.Servers))
	}
	return nil
}

// resolveLoop re-resolves the server names every period until ctx ends.
func (s *Storage) resolveLoop(ctx context.Context, every time.Duration, after func()) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.resolver.resolveAll(ctx)
		if after != nil {
			after()
		}
	}
}

// legalKey reports whether memcached's text protocol can carry key.
func legalKey(key string) bool {
	if key == "" || len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] == 0x7f {
			return false
		}
	}
	return true
}

// key returns the namespaced key and whether memcached can hold it.
func (s *Storage) key(k string) (string, bool) {
	full := *s.ns.Load() + k
	return full, k != "" && legalKey(full)
}

// owners returns the nodes holding key k (not namespaced), best first.
func (s *Storage) owners(k string) []*node {
	if s.place != nil {
		k = s.place(k)
	}
	var idx [maxReplicas]int
	rank(k, s.ring.seeds, idx[:s.replicas])
	nodes := make([]*node, s.replicas)
	for i := range nodes {
		nodes[i] = s.nodes[idx[i]]
	}
	return nodes
}

// on runs fn with a client on one of node n's connections, unless n is
// down. Errors name the node; transport failures wrap ErrUnavailable.
func (s *Storage) on(n *node, fn func(c *memcache.Client) error) error {
	return nodeError(n, n.do(func(sl *slot) error { return fn(sl.mc) }))
}

// onEach runs fn on every node in nodes, concurrently when there are
// several, and returns their errors in the same order.
func (s *Storage) onEach(nodes []*node, fn func(i int, c *memcache.Client) error) []error {
	errs := make([]error, len(nodes))
	if len(nodes) == 1 {
		errs[0] = s.on(nodes[0], func(c *memcache.Client) error { return fn(0, c) })
		return errs
	}
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.on(n, func(c *memcache.Client) error { return fn(i, c) })
		}()
	}
	wg.Wait()
	return errs
}

// anySucceeded returns nil if any of errs is nil, else all of them joined.
func anySucceeded(op string, errs []error) error {
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("memcachestore: %s: %w", op, errors.Join(errs...))
}

// record reports an operation to Config.Observe; it is deferred, so it
// takes the address of the operation's named error result.
func (s *Storage) record(op string, start time.Time, err *error) {
	if s.observe != nil {
		s.observe(op, *err, time.Since(start))
	}
}

// expiry converts a TTL into memcached's expiration field: whole seconds
// rounded up (a 1ns TTL must not become 0, which means "never expires"),
// 0 for no expiry, and an absolute Unix time above 30 days, where memcached
// stops reading the number as relative. A negative TTL is already expired.
func expiry(exp time.Duration, now time.Time) int32 {
	switch {
	case exp == 0:
		return 0
	case exp < 0:
		return -1
	}
	secs := int64(exp / time.Second)
	if exp%time.Second != 0 {
		secs++
	}
	if secs <= maxRelativeExpiry {
		return int32(secs)
	}
	abs := now.Unix() + secs
	if abs > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(abs)
}

// Get returns the value stored under key, or nil, nil when there is none.
// A key memcached cannot hold (too long, spaces, control characters,
// empty) is also nil, nil: a forged session cookie must lead to a fresh
// session, not an error, and Fiber relies on nil, nil to refuse session
// ids it did not issue (CVE-2024-38513).
//
// With two replicas, a miss on the first copy reads the second: a node
// that restarted empty must not lose the sessions it held. (The price: a
// session deleted while one copy was unreachable can come back from that
// copy; its browser already holds a new id by then.)
func (s *Storage) Get(key string) (val []byte, err error) {
	defer s.record("get", time.Now(), &err)
	k, ok := s.key(key)
	if !ok {
		return nil, nil
	}
	return s.get(k, key)
}

// get is Get of the full key k, placed as key.
func (s *Storage) get(k, key string) ([]byte, error) {
	var errs []error
	var missedOn *node // a copy that answered "not here"
	for _, n := range s.owners(key) {
		val, _, _, err := n.getAndIncr(k, "")
		switch {
		case err != nil:
			errs = append(errs, nodeError(n, err)) // this copy is unreachable: try the next
		case val != nil:
			if missedOn != nil && s.repairTTL > 0 {
				// The first copy was lost (its node restarted empty): put it
				// back, so a restart of the other node later loses nothing.
				repaired := &memcache.Item{Key: k, Value: val, Expiration: expiry(s.repairTTL, time.Now())}
				_ = s.on(missedOn, func(c *memcache.Client) error { return c.Add(repaired) })
			}
			return val, nil
		default:
			missedOn = n // look at the other copy too
		}
	}
	if missedOn != nil {
		return nil, nil
	}
	return nil, fmt.Errorf("memcachestore: get: %w", errors.Join(errs...))
}

// GetAndIncrement reads getKey and adds one to the counter incrKey in one
// round trip: a returning visitor's home page needs exactly these two, and
// on a loaded machine the system calls of a second round trip cost more
// than the rest of the page. Both go in the node's next exchange (see
// pipeline.go), shared with the other pages in flight.
//
// It returns the value (nil when missing), the counter's new value and
// whether the counter existed: a missing counter is not created, since the
// caller decides from the value whether it belongs to a real session.
//
// The two keys must share their nodes (see Config.Place) and the Storage
// must keep one copy of each key; otherwise the two operations are made
// one after the other, as Get and a plain increment.
func (s *Storage) GetAndIncrement(getKey, incrKey string) (val []byte, count uint64, counted bool, err error) {
	defer s.record("get_and_increment", time.Now(), &err)
	gk, ok := s.key(getKey)
	if !ok {
		return nil, 0, false, nil // nothing can be stored under it
	}
	ik, ok := s.key(incrKey)
	if !ok {
		return nil, 0, false, fmt.Errorf("memcachestore: increment a %d-byte key: %w", len(incrKey), ErrInvalidKey)
	}
	owners := s.owners(getKey)
	if s.replicas != 1 || owners[0] != s.owners(incrKey)[0] {
		return s.getThenIncrement(gk, getKey, ik, incrKey)
	}
	n := owners[0]
	val, count, counted, err = n.getAndIncr(gk, ik)
	return val, count, counted, nodeError(n, err)
}

// Set stores val under key for exp (0: no expiry). As fiber.Storage asks,
// an empty key or value is ignored.
func (s *Storage) Set(key string, val []byte, exp time.Duration) (err error) {
	defer s.record("set", time.Now(), &err)
	if key == "" || len(val) == 0 {
		return nil
	}
	k, ok := s.key(key)
	if !ok {
		return fmt.Errorf("memcachestore: set a %d-byte key: %w", len(key), ErrInvalidKey)
	}
	if len(val) > MaxItemSize {
		return fmt.Errorf("memcachestore: set a %d-byte value: %w", len(val), ErrTooLarge)
	}
	item := &memcache.Item{Key: k, Value: val, Expiration: expiry(exp, time.Now())}
	errs := s.onEach(s.owners(key), func(_ int, c *memcache.Client) error { return c.Set(item) })
	return anySucceeded("set", errs)
}

// Delete removes key. A missing key, or one memcached could not hold, is
// not an error: Fiber's Regenerate, Reset and Destroy delete ids that may
// never have been saved.
func (s *Storage) Delete(key string) (err error) {
	defer s.record("delete", time.Now(), &err)
	k, ok := s.key(key)
	if !ok {
		return nil
	}
	errs := s.onEach(s.owners(key), func(_ int, c *memcache.Client) error {
		if err := c.Delete(k); !errors.Is(err, memcache.ErrCacheMiss) {
			return err
		}
		return nil
	})
	return anySucceeded("delete", errs)
}

// Touch sets key's expiry to exp from now. A missing key is not an error.
func (s *Storage) Touch(key string, exp time.Duration) (err error) {
	defer s.record("touch", time.Now(), &err)
	k, ok := s.key(key)
	if !ok {
		return nil
	}
	e := expiry(exp, time.Now())
	errs := s.onEach(s.owners(key), func(_ int, c *memcache.Client) error {
		if err := c.Touch(k, e); !errors.Is(err, memcache.ErrCacheMiss) {
			return err
		}
		return nil
	})
	return anySucceeded("touch", errs)
}

// Close stops re-resolution and the probers and closes idle connections.
// It is safe to call more than once; the Storage is not to be used
// afterwards.
func (s *Storage) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		<-s.followed
		s.probers.Wait()
		for _, n := range s.nodes {
			n.pool.closeIdle()
		}
	})
	return nil
}

// Increment atomically adds one to the counter under key and returns the
// new value. A missing counter is created at 1 with expiry exp; later
// increments keep the expiry it was created with (use Touch to extend it).
// Concurrent increments are never lost: each caller's +1 lands exactly
// once per copy, either through incr or through the add that created it.
// With Replicas: 2, see Storage for how the two copies are kept in step.
func (s *Storage) Increment(key string, exp time.Duration) (n uint64, err error) {
	defer s.record("increment", time.Now(), &err)
	k, ok := s.key(key)
	if !ok {
		return 0, fmt.Errorf("memcachestore: increment a %d-byte key: %w", len(key), ErrInvalidKey)
	}
	n, _, err = s.increment(k, key, exp)
	return n, err
}

// increment is Increment of the full key k, placed as key. It also
// returns the nodes on which the counter had to be created although
// another copy existed: they lost their data (restarted empty) or evicted
// it.
func (s *Storage) increment(k, key string, exp time.Duration) (best uint64, lost []*node, err error) {
	owners := s.owners(key)
	vals := make([]uint64, len(owners))
	created := make([]bool, len(owners))
	owed := make([]uint64, len(owners))
	for i, n := range owners {
		owed[i] = n.owed.take(k) // a count it missed while down, 0 if none
	}
	errs := s.onEach(owners, func(i int, c *memcache.Client) (err error) {
		vals[i], created[i], err = incrOrCreate(c, k, exp)
		return err
	})
	if err := anySucceeded("increment", errs); err != nil {
		for i, n := range owners {
			n.owed.add(k, owed[i]) // not counted anywhere: still owed as it was
		}
		return 0, nil, err
	}
	for i, v := range vals {
		if errs[i] == nil {
			best = max(best, v)
		}
		if owed[i] > 0 {
			// A count returned earlier, whichever copy answers now: this
			// visit came after it. (Also keeps it when node i fails again.)
			best = max(best, owed[i]+1)
		}
	}
	// A copy that was skipped (down) or had no free connection certainly
	// missed this increment: it is owed the count, to be raised to at its
	// next one, so the copies do not drift apart while a node is briefly
	// out of use.
	for i, n := range owners {
		if s.replicas > 1 && (errors.Is(errs[i], errDown) || errors.Is(errs[i], errPoolBusy)) {
			n.owed.add(k, best)
		}
	}
	// A copy we just created restarted from 1 while the other remembers
	// the count, and one that was owed missed increments: bring it up, so
	// that losing the other node next does not send the count backwards.
	// Best effort: the answer is already known.
	for i, v := range vals {
		if errs[i] == nil && (created[i] || owed[i] > 0) && v < best {
			err := s.on(owners[i], func(c *memcache.Client) error { return raise(c, k, best, exp) })
			if err != nil && s.replicas > 1 {
				owners[i].owed.add(k, best) // still short: raised at its next increment
			}
			if created[i] {
				lost = append(lost, owners[i])
			}
		}
	}
	return best, lost, nil
}

// incrOrCreate does incr by one; on a miss, add "1" (a created copy is
// raised to the other one's count); if another client's add won the race
// (not stored), incr again. A key evicted between those steps sends us
// round again, a bounded number of times.
func incrOrCreate(c *memcache.Client, k string, exp time.Duration) (n uint64, created bool, err error) {
	for range 4 {
		n, err := c.Increment(k, 1)
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return n, false, err
		}
		err = c.Add(&memcache.Item{Key: k, Value: []byte("1"), Expiration: expiry(exp, time.Now())})
		if err == nil {
			return 1, true, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return 0, false, err
		}
	}
	return 0, false, errors.New("counter kept vanishing between incr and add")
}

// raise sets the counter k to target unless it already holds at least
// that, with compare-and-swap so that concurrent increments are not
// overwritten.
func raise(c *memcache.Client, k string, target uint64, exp time.Duration) error {
	for range 4 {
		item, err := c.Get(k)
		if errors.Is(err, memcache.ErrCacheMiss) {
			err = c.Add(&memcache.Item{Key: k, Value: strconv.AppendUint(nil, target, 10), Expiration: expiry(exp, time.Now())})
			if errors.Is(err, memcache.ErrNotStored) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		cur, err := strconv.ParseUint(strings.TrimSpace(string(item.Value)), 10, 64)
		if err != nil || cur >= target {
			return err
		}
		item.Value = strconv.AppendUint(nil, target, 10)
		item.Expiration = expiry(exp, time.Now())
		err = c.CompareAndSwap(item)
		if !errors.Is(err, memcache.ErrCASConflict) && !errors.Is(err, memcache.ErrNotStored) {
			return err
		}
	}
	return errors.New("counter kept changing while being raised")
}

// Ping checks the servers. It succeeds while every key is still served by
// at least one of its copies: with Replicas: 1 every server must answer;
// with 2, at most one may be down. The error lists the servers that did
// not answer and wraps ErrUnavailable.
func (s *Storage) Ping() (err error) {
	defer s.record("ping", time.Now(), &err)
	errs := s.onEach(s.nodes, func(_ int, c *memcache.Client) error { return c.Ping() })
	var down []error
	for _, err := range errs {
		if err != nil {
			down = append(down, err)
		}
	}
	if len(down) == 0 || (len(down) < s.replicas && len(down) < len(s.nodes)) {
		return nil
	}
	return fmt.Errorf("memcachestore: ping: %d of %d servers down: %w: %w", len(down), len(s.nodes), ErrUnavailable, errors.Join(down...))
}
