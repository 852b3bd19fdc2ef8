package memcachestore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// memcachedAddr returns the shared test memcached (testkit.Require).
func memcachedAddr(t *testing.T) string {
	t.Helper()
	return testkit.Require(t, testkit.EnvMemcached)
}

// uniquePrefix gives each test its own namespace in the shared memcached.
func uniquePrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "lltest:" + hex.EncodeToString(b) + ":"
}

// MustNew builds a Storage on the test memcached and closes it at cleanup.
func MustNew(t *testing.T, cfg Config) *Storage {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = testMaxConns
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testTimeout is generous: CI runs test packages in parallel on two cores,
// and a slow answer there is not what these tests are about.
const testTimeout = 2 * time.Second

// testMaxConns is the pool size of test stores (the service's is in config).
const testMaxConns = 64

// newTestStorage is a Storage on LOCALLIBRARY_TEST_MEMCACHED with a fresh prefix.
func newTestStorage(t *testing.T) *Storage {
	t.Helper()
	return MustNew(t, Config{Servers: []string{memcachedAddr(t)}, KeyPrefix: uniquePrefix(t)})
}

func TestParseServers(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    []string
		wantErr string // substring of the error; "" means success
	}{
		{"one", "mc:11211", []string{"mc:11211"}, ""},
		{"trimmed", "  a:1 ,b:2\t, c:3 ", []string{"a:1", "b:2", "c:3"}, ""},
		{"ipv6", "[::1]:11211", []string{"[::1]:11211"}, ""},
		{"statefulset names", "memcached-0.memcached:11211,memcached-1.memcached:11211",
			[]string{"memcached-0.memcached:11211", "memcached-1.memcached:11211"}, ""},
		{"empty list", "", nil, "empty"},
		{"blank list", "  ", nil, "empty"},
		{"empty entry", "a:1,,b:2", nil, "entry 2"},
		{"trailing comma", "a:1,", nil, "entry 2"},
		{"no port", "a:1,memcached", nil, `"memcached"`},
		{"empty port", "memcached:", nil, `"memcached:"`},
		{"bad port", "memcached:abc", nil, `"memcached:abc"`},
		{"port out of range", "memcached:70000", nil, `"memcached:70000"`},
		{"port zero", "memcached:0", nil, `"memcached:0"`},
		{"no host", ":11211", nil, `":11211"`},
		{"url", "tcp://memcached:11211", nil, `"tcp://memcached:11211"`},
		{"space in host", "mem cached:11211", nil, `"mem cached:11211"`},
		{"duplicate", "a:1, a:1", nil, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServers(tt.list)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseServers(%q) = %v, %v; want error containing %q", tt.list, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseServers(%q): %v", tt.list, err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("ParseServers(%q) = %q, want %q", tt.list, got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no servers", Config{}},
		{"empty entry", Config{Servers: []string{""}}},
		{"no port", Config{Servers: []string{"127.0.0.1"}}},
		{"bad port", Config{Servers: []string{"127.0.0.1:x"}}},
		{"one bad among good", Config{Servers: []string{"127.0.0.1:11211", "127.0.0.1"}}},
		{"negative timeout", Config{Servers: []string{"127.0.0.1:11211"}, Timeout: -time.Second}},
		{"huge timeout", Config{Servers: []string{"127.0.0.1:11211"}, Timeout: time.Hour}},
		{"negative max conns", Config{Servers: []string{"127.0.0.1:11211"}, MaxConns: -1}},
		{"prefix with space", Config{Servers: []string{"127.0.0.1:11211"}, KeyPrefix: "ll :"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tt.cfg)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		exp  time.Duration
		want int32
	}{
		{"zero is no expiry", 0, 0},
		{"negative is already expired", -time.Second, -1},
		{"1ns rounds up to 1s", time.Nanosecond, 1},
		{"1s", time.Second, 1},
		{"1.5s rounds up", 1500 * time.Millisecond, 2},
		{"24h", 24 * time.Hour, 86400},
		{"30 days stays relative", 30 * 24 * time.Hour, 30 * 86400},
		{"30 days and 1ns becomes absolute", 30*24*time.Hour + 1, int32(now.Unix()) + 30*86400 + 1},
		{"31 days becomes absolute", 31 * 24 * time.Hour, int32(now.Unix()) + 31*86400},
		{"past 2038 is clamped", 100 * 365 * 24 * time.Hour, 1<<31 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expiry(tt.exp, now); got != tt.want {
				t.Fatalf("expiry(%v) = %d, want %d", tt.exp, got, tt.want)
			}
		})
	}
}

func TestGetMissingAndInvalidKeys(t *testing.T) {
	s := newTestStorage(t)
	tests := []struct{ name, key string }{
		{"missing", "no-such-session"},
		{"empty", ""},
		{"251 bytes", strings.Repeat("k", 251)},
		{"too long with prefix", strings.Repeat("k", 250-len(*s.ns.Load())+1)},
		{"space", "a b"},
		{"newline", "a\nb"},
		{"nul", "a\x00b"},
		{"DEL", "a\x7fb"},
		{"protocol injection", "x\r\nflush_all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Get(tt.key)
			if got != nil || err != nil {
				t.Fatalf("Get(%q) = %q, %v; want nil, nil", tt.key, got, err)
			}
		})
	}
}

func TestSetGetDelete(t *testing.T) {
	s := newTestStorage(t)
	longest := strings.Repeat("k", 250-len(*s.ns.Load()))
	tests := []struct {
		name string
		key  string
		val  []byte
	}{
		{"plain", "session-1", []byte("hello")},
		{"binary value", "session-2", []byte{0, 1, 2, '\r', '\n', 255}},
		{"longest key", longest, []byte("x")},
		{"utf-8 key", "séance", []byte("x")},
		{"large value", "big", []byte(strings.Repeat("v", 100_000))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Set(tt.key, tt.val, time.Minute); err != nil {
				t.Fatalf("Set: %v", err)
			}
			got, err := s.Get(tt.key)
			if err != nil || string(got) != string(tt.val) {
				t.Fatalf("Get = %.40q, %v; want %.40q", got, err, tt.val)
			}
			if err := s.Delete(tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if got, err := s.Get(tt.key); got != nil || err != nil {
				t.Fatalf("Get after Delete = %q, %v; want nil, nil", got, err)
			}
			if err := s.Delete(tt.key); err != nil {
				t.Fatalf("second Delete of a missing key: %v", err)
			}
		})
	}
}

func TestSetInvalidKey(t *testing.T) {
	s := newTestStorage(t)
	for _, key := range []string{strings.Repeat("k", 251), "a b", "a\nb"} {
		if err := s.Set(key, []byte("v"), time.Minute); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Set(%.20q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(key); err != nil {
			t.Errorf("Delete(%.20q) = %v, want nil", key, err)
		}
	}
	// fiber.Storage: an empty key or value is ignored without an error.
	if err := s.Set("", []byte("v"), 0); err != nil {
		t.Errorf("Set with empty key: %v", err)
	}
	if err := s.Set("empty-value", nil, 0); err != nil {
		t.Errorf("Set with empty value: %v", err)
	}
	if got, _ := s.Get("empty-value"); got != nil {
		t.Errorf("empty value was stored: %q", got)
	}
}

func TestExpiryIsApplied(t *testing.T) {
	s := newTestStorage(t)
	// A negative TTL stores an already-expired item: memcached's own
	// clock decides, so this needs no waiting.
	if err := s.Set("gone", []byte("v"), -time.Second); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := s.Get("gone"); got != nil || err != nil {
		t.Fatalf("Get of an expired item = %q, %v", got, err)
	}
	// More than 30 days: must be stored (as an absolute time), not read
	// by memcached as a date in 1970 and dropped at once.
	if err := s.Set("long", []byte("v"), 60*24*time.Hour); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, err := s.Get("long"); string(got) != "v" || err != nil {
		t.Fatalf("Get of a 60-day item = %q, %v", got, err)
	}
}

func TestTouch(t *testing.T) {
	s := newTestStorage(t)
	if err := s.Touch("missing", time.Minute); err != nil {
		t.Fatalf("Touch of a missing key: %v", err)
	}
	if err := s.Set("k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Touch to a negative TTL expires the item now: proof Touch reached it.
	if err := s.Touch("k", -time.Second); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if got, err := s.Get("k"); got != nil || err != nil {
		t.Fatalf("Get after Touch(-1s) = %q, %v; want nil, nil", got, err)
	}
}

func TestIncrement(t *testing.T) {
	s := newTestStorage(t)
	n, err := s.Increment("visits", time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("first Increment = %d, %v; want 1", n, err)
	}
	const workers = 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Increment("visits", time.Hour); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Increment: %v", err)
	}
	if got, err := s.Get("visits"); string(got) != "51" || err != nil {
		t.Fatalf("counter = %q, %v; want 51", got, err)
	}
}

func TestIncrementConcurrentCreate(t *testing.T) {
	// All 50 race to create the same missing counter: add wins once, the
	// others must fall back to incr, and every +1 must land.
	s := newTestStorage(t)
	const workers = 50
	var wg sync.WaitGroup
	results := make(chan uint64, workers)
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, err := s.Increment("fresh", time.Hour)
			if err != nil {
				t.Errorf("Increment: %v", err)
			}
			results <- n
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	seen := make(map[uint64]bool)
	for n := range results {
		if seen[n] {
			t.Errorf("value %d returned twice", n)
		}
		seen[n] = true
	}
	for i := uint64(1); i <= workers; i++ {
		if !seen[i] {
			t.Errorf("value %d never returned", i)
		}
	}
}

func TestIncrementNonNumericIsNotUnavailable(t *testing.T) {
	s := newTestStorage(t)
	if err := s.Set("word", []byte("abc"), time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err := s.Increment("word", time.Minute)
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Increment of a non-number = %v; want an error that is not ErrUnavailable", err)
	}
}

func TestReset(t *testing.T) {
	prefix := uniquePrefix(t)
	s := MustNew(t, Config{Servers: []string{memcachedAddr(t)}, KeyPrefix: prefix})
	other := MustNew(t, Config{Servers: []string{memcachedAddr(t)}, KeyPrefix: "lltest:other:" + prefix})
	if err := s.Set("keep", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := other.Set("keep", []byte("other app"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if got, err := s.Get("keep"); got != nil || err != nil {
		t.Fatalf("after Reset, Get = %q, %v; want nil, nil", got, err)
	}
	if got, _ := other.Get("keep"); string(got) != "other app" {
		t.Fatalf("Reset reached another prefix: Get = %q", got)
	}
	if err := s.Set("keep", []byte("new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// A Storage made later, as another replica would be, reads the
	// generation and sees the new data only.
	late := MustNew(t, Config{Servers: []string{memcachedAddr(t)}, KeyPrefix: prefix})
	if got, _ := late.Get("keep"); string(got) != "new" {
		t.Fatalf("a later Storage reads %q, want the data stored after Reset", got)
	}
	// The generation evicted (deleted here): it is put back, not reset
	// to the start, where old data would come back.
	c := memcache.New(memcachedAddr(t))
	defer c.Close()
	if err := c.Delete(prefix + genKey); err != nil {
		t.Fatal(err)
	}
	if err := s.readGeneration(); err != nil {
		t.Fatal(err)
	}
	if it, err := c.Get(prefix + genKey); err != nil || string(it.Value) != "1" {
		t.Fatalf("generation after eviction = %v, %v; want 1 put back", it, err)
	}
}

func TestPing(t *testing.T) {
	s := newTestStorage(t)
	if err := s.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	// Nothing listens on port 1 of loopback: connection refused.
	s := MustNew(t, Config{Servers: []string{"127.0.0.1:1"}})
	if _, err := s.Get("k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get = %v, want ErrUnavailable", err)
	}
	if err := s.Set("k", []byte("v"), 0); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Set = %v, want ErrUnavailable", err)
	}
	if err := s.Ping(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
}

// fiberApp serves "/" through Fiber's own session middleware on store:
// each request counts a visit in the session and answers the count as
// that many x; "/destroy" destroys the session. A failing store is a 503.
func fiberApp(store *session.Store) *fiber.App {
	app := fiber.New()
	app.Get("/", func(c *fiber.Ctx) error {
		sess, err := store.Get(c)
		if err != nil {
			return c.SendStatus(fiber.StatusServiceUnavailable)
		}
		visits, _ := sess.Get("visits").(int)
		visits++
		sess.Set("visits", visits)
		if err := sess.Save(); err != nil {
			return c.SendStatus(fiber.StatusServiceUnavailable)
		}
		return c.SendString(strings.Repeat("x", visits))
	})
	app.Get("/destroy", func(c *fiber.Ctx) error {
		sess, err := store.Get(c)
		if err != nil {
			return c.SendStatus(fiber.StatusServiceUnavailable)
		}
		return sess.Destroy()
	})
	return app
}

// fiberGet requests path with the session cookie id ("" for none) and
// returns the status, the session id the answer sets, and the body.
func fiberGet(t *testing.T, app *fiber.App, path, id string) (status int, newID, body string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	if id != "" {
		req.Header.Set("Cookie", "session_id="+id)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("app.Test: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "session_id" {
			newID = c.Value
		}
	}
	return resp.StatusCode, newID, string(b)
}

// TestFiberSession is Fiber's session middleware on the Storage, as the
// project card describes it (the site itself has its own session layer,
// see internal/session): sessions are created, read back, expire, are
// destroyed and reset, and forged ids get a fresh session.
func TestFiberSession(t *testing.T) {
	s := newTestStorage(t)
	app := fiberApp(session.New(session.Config{Storage: s, Expiration: time.Hour}))

	status, id, body := fiberGet(t, app, "/", "")
	if status != 200 || id == "" || body != "x" {
		t.Fatalf("first request: status %d, id %q, body %q", status, id, body)
	}
	status, id2, body := fiberGet(t, app, "/", id)
	if status != 200 || id2 != id || body != "xx" {
		t.Fatalf("second request: status %d, id %q (want %q), body %q", status, id2, id, body)
	}

	forged := []struct{ name, id string }{
		{"unissued uuid", "0a1b2c3d-0000-4000-8000-000000000000"},
		{"too long", strings.Repeat("a", 300)},
		{"tab", "abc\tdef"},
		{"protocol injection", "x%0d%0aflush_all"},
	}
	for _, tt := range forged {
		t.Run(tt.name, func(t *testing.T) {
			status, got, body := fiberGet(t, app, "/", tt.id)
			if status != 200 || got == "" || got == tt.id || got == id || body != "x" {
				t.Fatalf("status %d, id %q, body %q; want a fresh session", status, got, body)
			}
		})
	}

	t.Run("destroy", func(t *testing.T) {
		_, id, _ := fiberGet(t, app, "/", "")
		if status, _, _ := fiberGet(t, app, "/destroy", id); status != 200 {
			t.Fatalf("destroy: status %d", status)
		}
		if _, got, body := fiberGet(t, app, "/", id); got == id || body != "x" {
			t.Fatalf("after Destroy: id %q, body %q; want a fresh session", got, body)
		}
	})
	t.Run("reset", func(t *testing.T) {
		_, id, _ := fiberGet(t, app, "/", "")
		if err := s.Reset(); err != nil {
			t.Fatal(err)
		}
		if _, got, body := fiberGet(t, app, "/", id); got == id || body != "x" {
			t.Fatalf("after Reset: id %q, body %q; want a fresh session", got, body)
		}
	})
	t.Run("expire", func(t *testing.T) {
		short := fiberApp(session.New(session.Config{Storage: s, Expiration: time.Second}))
		_, id, _ := fiberGet(t, short, "/", "")
		time.Sleep(2100 * time.Millisecond) // memcached counts whole seconds
		if _, got, body := fiberGet(t, short, "/", id); got == id || body != "x" {
			t.Fatalf("after expiry: id %q, body %q; want a fresh session", got, body)
		}
	})
}

// TestFiberSessionNodeLost: with its memcached killed, Fiber's middleware
// gets an error (the page answers 503, nothing panics); restarted empty,
// the old cookie starts a fresh session and the site works again.
func TestFiberSessionNodeLost(t *testing.T) {
	node := memcachedtest.Start(t, "")
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: []string{node.Addr}, Timeout: 500 * time.Millisecond}, hooks{probed: probed.done})
	app := fiberApp(session.New(session.Config{Storage: s, Expiration: time.Hour}))
	_, id, _ := fiberGet(t, app, "/", "")
	node.Kill()
	if status, _, _ := fiberGet(t, app, "/", id); status != fiber.StatusServiceUnavailable {
		t.Fatalf("with memcached dead: status %d, want 503", status)
	}
	node.Restart(t) // the new one ends with the test
	probed.waitUp(t, s.nodes[0])
	status, got, body := fiberGet(t, app, "/", id)
	if status != 200 || got == "" || got == id || body != "x" {
		t.Fatalf("after the restart: status %d, id %q, body %q; want a fresh session", status, got, body)
	}
	if status, _, body := fiberGet(t, app, "/", got); status != 200 || body != "xx" {
		t.Fatalf("the fresh session: status %d, body %q", status, body)
	}
}
