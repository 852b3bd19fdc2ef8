// Package memcachestore is a fiber.Storage backed by Memcached, for Fiber's
// session middleware, plus the few extra operations the service needs on the
// hot path (an atomic visit counter, TTL refresh, a readiness ping).
//
// It exists because github.com/gofiber/storage/memcache cannot be fetched
// here; it is built on github.com/bradfitz/gomemcache.
package memcachestore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

const (
	// DefaultTimeout bounds every socket operation (dial, read, write).
	// A session lookup sits on every request, so a hung memcached must cost
	// a request milliseconds, not gomemcache's default half second.
	DefaultTimeout = 100 * time.Millisecond

	// MaxTimeout is the largest Timeout New accepts.
	MaxTimeout = 10 * time.Second

	// DefaultMaxIdleConns is the idle-connection pool size per server.
	// gomemcache's own default of 2 makes it dial a new connection for
	// almost every operation once more than two requests are in flight.
	DefaultMaxIdleConns = 64

	// maxKeyLen is memcached's key length limit, prefix included.
	maxKeyLen = 250

	// maxRelativeExpiry is the largest expiry memcached reads as "seconds
	// from now"; larger values are read as an absolute Unix time.
	maxRelativeExpiry = 30 * 24 * 60 * 60
)

var (
	// ErrUnavailable wraps every failure to reach a memcached server
	// (connection refused, timeout, connection dropped), so callers can tell
	// "memcached is down" from other failures with errors.Is.
	ErrUnavailable = errors.New("memcached unavailable")

	// ErrInvalidKey is returned by writes whose key (with the prefix)
	// memcached cannot hold: empty, longer than 250 bytes, or containing
	// spaces or control characters. Get never returns it: such a key
	// simply is not there.
	ErrInvalidKey = errors.New("invalid memcached key")
)

// Config configures a Storage.
type Config struct {
	// Servers are host:port entries (see ParseServers).
	Servers []string

	// Timeout is the per-operation socket timeout. Zero means
	// DefaultTimeout; negative or above MaxTimeout is an error.
	Timeout time.Duration

	// MaxIdleConns is the idle-connection pool size per server; size it
	// to the expected number of concurrent requests. Zero means
	// DefaultMaxIdleConns.
	MaxIdleConns int

	// KeyPrefix namespaces every key in a memcached shared with other
	// apps, e.g. "ll:". It counts against memcached's 250-byte key limit.
	KeyPrefix string
}

// Storage is a fiber.Storage on memcached. It is safe for concurrent use.
type Storage struct {
	client *memcache.Client
	prefix string

	closeOnce sync.Once
}

// ParseServers splits a comma-separated "host:port, host:port" list.
// Entries are trimmed; an empty entry, a missing or invalid port, or
// anything that is not host:port is an error naming the entry.
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

// New validates cfg, resolves the servers and returns a Storage. It does
// not connect: use Ping for that.
func New(cfg Config) (*Storage, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("memcachestore: no servers configured")
	}
	for i, s := range cfg.Servers {
		if err := checkServer(s); err != nil {
			return nil, fmt.Errorf("memcachestore: server %d: %w", i+1, err)
		}
	}
	switch {
	case cfg.Timeout < 0 || cfg.Timeout > MaxTimeout:
		return nil, fmt.Errorf("memcachestore: timeout %v outside (0, %v]", cfg.Timeout, MaxTimeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.MaxIdleConns < 0:
		return nil, fmt.Errorf("memcachestore: negative MaxIdleConns %d", cfg.MaxIdleConns)
	case cfg.MaxIdleConns == 0:
		cfg.MaxIdleConns = DefaultMaxIdleConns
	}
	if cfg.KeyPrefix != "" && !legalKey(cfg.KeyPrefix) {
		return nil, fmt.Errorf("memcachestore: key prefix %q: %w", cfg.KeyPrefix, ErrInvalidKey)
	}

	// memcache.New drops SetServers' error and leaves an empty list that
	// only fails at the first request; check it here instead.
	var list memcache.ServerList
	if err := list.SetServers(cfg.Servers...); err != nil {
		return nil, fmt.Errorf("memcachestore: resolve servers: %w", err)
	}
	client := memcache.NewFromSelector(&list)
	client.Timeout = cfg.Timeout
	client.MaxIdleConns = cfg.MaxIdleConns
	return &Storage{client: client, prefix: cfg.KeyPrefix}, nil
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
	full := s.prefix + k
	return full, k != "" && legalKey(full)
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

// unavailable classifies err: failures to talk to memcached wrap
// ErrUnavailable; answers from memcached (misses, "not stored", client
// errors) are returned as they are.
func unavailable(op string, err error) error {
	if err == nil {
		return nil
	}
	if isTransport(err) {
		return fmt.Errorf("memcachestore: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("memcachestore: %s: %w", op, err)
}

// isTransport reports whether err means the server could not be reached or
// did not answer, as opposed to an answer we did not like.
func isTransport(err error) bool {
	var netErr net.Error
	var cte *memcache.ConnectTimeoutError
	switch {
	case errors.Is(err, memcache.ErrCacheMiss),
		errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrCASConflict),
		errors.Is(err, memcache.ErrMalformedKey):
		return false
	case errors.As(err, &netErr), errors.As(err, &cte),
		errors.Is(err, memcache.ErrNoServers),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

// Get returns the value stored under key, or nil, nil when there is none.
// A key memcached cannot hold (too long, spaces, control characters,
// empty) is also nil, nil: a forged session cookie must lead to a fresh
// session, not an error, and Fiber relies on nil, nil to refuse session
// ids it did not issue.
func (s *Storage) Get(key string) ([]byte, error) {
	k, ok := s.key(key)
	if !ok {
		return nil, nil
	}
	item, err := s.client.Get(k)
	switch {
	case errors.Is(err, memcache.ErrCacheMiss):
		return nil, nil
	case err != nil:
		return nil, unavailable("get", err)
	}
	return item.Value, nil
}

// Set stores val under key for exp (0: no expiry). As fiber.Storage asks,
// an empty key or value is ignored.
func (s *Storage) Set(key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	k, ok := s.key(key)
	if !ok {
		return fmt.Errorf("memcachestore: set %.40q: %w", key, ErrInvalidKey)
	}
	err := s.client.Set(&memcache.Item{Key: k, Value: val, Expiration: expiry(exp, time.Now())})
	return unavailable("set", err)
}

// Delete removes key. A missing key, or one memcached could not hold, is
// not an error: Fiber's Regenerate, Reset and Destroy delete ids that may
// never have been saved.
func (s *Storage) Delete(key string) error {
	k, ok := s.key(key)
	if !ok {
		return nil
	}
	err := s.client.Delete(k)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return unavailable("delete", err)
}

// Reset is part of fiber.Storage ("delete all keys") but memcached can
// neither list keys nor delete by prefix: the only way to delete
// everything is flush_all, which wipes every app's data on a memcached
// shared with other services (and every other replica's sessions of this
// app too). Reset therefore deletes nothing and returns an error wrapping
// errors.ErrUnsupported. To drop all sessions, change KeyPrefix (e.g.
// "ll:v2:") and let the old keys expire.
func (s *Storage) Reset() error {
	return fmt.Errorf("memcachestore: reset would flush every app's data in memcached: %w", errors.ErrUnsupported)
}

// Close closes idle connections. It is safe to call more than once.
func (s *Storage) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.client.Close() })
	return err
}

// Increment atomically adds one to the counter under key and returns the
// new value. A missing counter is created at 1 with expiry exp; later
// increments keep the original expiry (use Touch to extend it).
// Concurrent increments are never lost: each caller's +1 lands exactly
// once, either through incr or through the add that created the key.
func (s *Storage) Increment(key string, exp time.Duration) (uint64, error) {
	k, ok := s.key(key)
	if !ok {
		return 0, fmt.Errorf("memcachestore: increment %.40q: %w", key, ErrInvalidKey)
	}
	n, err := incrOrCreate(s.client, k, exp)
	return n, unavailable("increment", err)
}

// incrOrCreate does incr; on a miss, add "1"; if another client's add won
// the race (not stored), incr again. A key evicted between those steps
// sends us round again, a bounded number of times.
func incrOrCreate(c *memcache.Client, k string, exp time.Duration) (uint64, error) {
	for range 4 {
		n, err := c.Increment(k, 1)
		if !errors.Is(err, memcache.ErrCacheMiss) {
			return n, err
		}
		err = c.Add(&memcache.Item{Key: k, Value: []byte("1"), Expiration: expiry(exp, time.Now())})
		if err == nil {
			return 1, nil
		}
		if !errors.Is(err, memcache.ErrNotStored) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("counter %q kept vanishing between incr and add", k)
}

// Touch sets key's expiry to exp from now. A missing key is not an error.
func (s *Storage) Touch(key string, exp time.Duration) error {
	k, ok := s.key(key)
	if !ok {
		return nil
	}
	err := s.client.Touch(k, expiry(exp, time.Now()))
	if errors.Is(err, memcache.ErrCacheMiss) {
		return nil
	}
	return unavailable("touch", err)
}

// Ping checks that every server answers.
func (s *Storage) Ping() error {
	return unavailable("ping", s.client.Ping())
}
