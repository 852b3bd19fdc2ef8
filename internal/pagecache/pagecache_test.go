package pagecache_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/pagecache"
)

// source is a page source whose content and health the test changes.
type source struct {
	version atomic.Int64
	down    atomic.Bool
	loads   atomic.Int64
}

var errDown = errors.New("source down")

func (s *source) load(key string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		s.loads.Add(1)
		if s.down.Load() {
			return nil, errDown
		}
		return fmt.Appendf(nil, "%s v%d", key, s.version.Load()), nil
	}
}

func get(t *testing.T, c *pagecache.Cache, s *source, key string) (string, bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, stale, err := c.Get(ctx, key, s.load(key))
	return string(body), stale, err
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHitThenRefreshWithinTTL(t *testing.T) {
	var s source
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: 200 * time.Millisecond, StaleLimit: time.Minute})
	for range 3 {
		if body, stale, err := get(t, c, &s, "a"); body != "a v0" || stale || err != nil {
			t.Fatalf("Get = %q %v %v, want a v0", body, stale, err)
		}
	}
	if n := s.loads.Load(); n != 1 {
		t.Errorf("3 Gets within the TTL loaded %d times, want 1", n)
	}
	s.version.Store(1)
	// v0 was loaded before changed: a Get that starts a TTL after it must
	// not return v0 unmarked.
	changed := time.Now()
	eventually(t, "new version served", func() bool {
		asked := time.Now()
		body, stale, _ := get(t, c, &s, "a")
		if body == "a v0" && !stale && asked.Sub(changed) > 200*time.Millisecond {
			t.Fatalf("served %q %v after the change, TTL 200ms", body, asked.Sub(changed))
		}
		return body == "a v1"
	})
}

func TestOutageServesHeldPagesStale(t *testing.T) {
	var s source
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: 50 * time.Millisecond, StaleLimit: time.Minute})
	if _, _, err := get(t, c, &s, "held"); err != nil {
		t.Fatal(err)
	}
	s.down.Store(true)
	eventually(t, "held page marked stale", func() bool {
		body, stale, err := get(t, c, &s, "held")
		if err != nil || body != "held v0" {
			t.Fatalf("during the outage Get = %q %v, want the held page", body, err)
		}
		return stale
	})
	if _, _, err := get(t, c, &s, "other"); !errors.Is(err, errDown) {
		t.Errorf("a page not held: err = %v, want %v", err, errDown)
	}
	s.down.Store(false)
	s.version.Store(2)
	eventually(t, "fresh page after the outage", func() bool {
		body, stale, err := get(t, c, &s, "held")
		return err == nil && !stale && body == "held v2"
	})
}

func TestStaleLimit(t *testing.T) {
	var s source
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: 20 * time.Millisecond, StaleLimit: 100 * time.Millisecond})
	if _, _, err := get(t, c, &s, "a"); err != nil {
		t.Fatal(err)
	}
	s.down.Store(true)
	eventually(t, "page dropped after the stale limit", func() bool {
		_, _, err := get(t, c, &s, "a")
		return errors.Is(err, errDown)
	})
}

func TestBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	c := pagecache.New(pagecache.Options{MaxBytes: limit, TTL: time.Minute})
	// Pages of 1,000 bytes: random bytes, as hex.
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		page := make([]byte, 500)
		for j := range page {
			page[j] = byte(rnd.IntN(256))
		}
		_, _, err := c.Get(context.Background(), fmt.Sprint("k", i), func(context.Context) ([]byte, error) { return []byte(hex.EncodeToString(page)), nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "cache within its bound", func() bool { return c.Bytes() <= limit })
	if c.Bytes() < limit/2 {
		t.Errorf("cache holds %d bytes, want it used (bound %d)", c.Bytes(), limit)
	}
}

func TestOffLoadsEveryTime(t *testing.T) {
	var s source
	c := pagecache.New(pagecache.Options{MaxBytes: 0, TTL: time.Minute})
	for range 3 {
		if _, _, err := get(t, c, &s, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.loads.Load(); n != 3 {
		t.Errorf("cache off: %d loads for 3 Gets, want 3", n)
	}
}
