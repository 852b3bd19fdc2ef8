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

var errNoSuchPage = errors.New("no such page")

// TestNotFoundIsKept: "no such page" is an answer, kept as a page is, so
// asking again, one at a time or all at once, loads it once.
func TestNotFoundIsKept(t *testing.T) {
	var loads atomic.Int64
	missing := func(context.Context) ([]byte, error) {
		loads.Add(1)
		return nil, fmt.Errorf("page 9: %w", errNoSuchPage)
	}
	results := map[string]int{}
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: time.Minute, StaleLimit: time.Minute,
		NotFound: func(err error) bool { return errors.Is(err, errNoSuchPage) },
		Record:   func(r string) { results[r]++ }})
	for range 1000 {
		if _, _, err := c.Get(context.Background(), "9", missing); !errors.Is(err, errNoSuchPage) {
			t.Fatalf("Get = %v, want %v", err, errNoSuchPage)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Errorf("1,000 Gets of a missing page loaded it %d times, want 1", n)
	}
	if results["hit"] != 999 || results["miss"] != 1 {
		t.Errorf("recorded %v, want 999 hits and a miss", results)
	}
	// otter applies weights as it drains its write buffer.
	eventually(t, "the kept answer weighed against MaxBytes", func() bool { return c.Bytes() > 0 })
}

// TestNotFoundTurnsIntoAPage: a page that appears is served within the TTL.
func TestNotFoundTurnsIntoAPage(t *testing.T) {
	var exists atomic.Bool
	load := func(context.Context) ([]byte, error) {
		if exists.Load() {
			return []byte("here"), nil
		}
		return nil, errNoSuchPage
	}
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: 100 * time.Millisecond, StaleLimit: time.Minute,
		NotFound: func(err error) bool { return errors.Is(err, errNoSuchPage) }})
	if _, _, err := c.Get(context.Background(), "new", load); !errors.Is(err, errNoSuchPage) {
		t.Fatalf("before: %v", err)
	}
	exists.Store(true)
	eventually(t, "the new page served", func() bool {
		body, _, err := c.Get(context.Background(), "new", load)
		return err == nil && string(body) == "here"
	})
}

// TestLoadsAreBounded: however many pages are asked for at once, at most
// MaxLoads loads run; one that finds no slot within LoadWait fails with
// ErrBusy, and a page held is still served meanwhile.
func TestLoadsAreBounded(t *testing.T) {
	const maxLoads, asks = 3, 40
	var running, most atomic.Int64
	release := make(chan struct{})
	blocked := func(ctx context.Context) ([]byte, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case <-release:
			return []byte("page"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	busy := atomic.Int64{}
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: time.Minute, StaleLimit: time.Minute, LoadTimeout: 10 * time.Second,
		MaxLoads: maxLoads, LoadWait: 50 * time.Millisecond,
		Record: func(r string) {
			if r == "busy" {
				busy.Add(1)
			}
		}})
	if _, _, err := c.Get(context.Background(), "held", func(context.Context) ([]byte, error) { return []byte("held"), nil }); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, asks)
	for i := range asks {
		go func() {
			_, _, err := c.Get(context.Background(), fmt.Sprint("k", i), blocked)
			errs <- err
		}()
	}
	refused := 0
	for range asks - maxLoads {
		if err := <-errs; !errors.Is(err, pagecache.ErrBusy) {
			t.Fatalf("a load beyond the %d in flight: %v, want ErrBusy", maxLoads, err)
		}
		refused++
	}
	if body, _, err := c.Get(context.Background(), "held", blocked); err != nil || string(body) != "held" {
		t.Errorf("a held page while the loads are taken: %q %v", body, err)
	}
	close(release)
	for range maxLoads {
		if err := <-errs; err != nil {
			t.Errorf("a load in flight: %v", err)
		}
	}
	if m := most.Load(); m != maxLoads {
		t.Errorf("%d loads ran at once, want %d", m, maxLoads)
	}
	if busy.Load() != int64(refused) {
		t.Errorf("recorded %d busy, want %d", busy.Load(), refused)
	}
}

// TestRefreshesKeepSlotsMissesCannotTake: while misses hold all theirs,
// a held page is still refreshed, in the slots only refreshes may take.
func TestRefreshesKeepSlotsMissesCannotTake(t *testing.T) {
	const maxLoads, maxMisses = 4, 3
	release := make(chan struct{})
	defer close(release)
	var running atomic.Int64
	blocked := func(ctx context.Context) ([]byte, error) {
		running.Add(1)
		select {
		case <-release:
			return []byte("page"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := pagecache.New(pagecache.Options{MaxBytes: 1 << 20, TTL: 100 * time.Millisecond, StaleLimit: time.Minute, LoadTimeout: 10 * time.Second,
		MaxLoads: maxLoads, MaxMisses: maxMisses, LoadWait: 20 * time.Millisecond})
	var s source
	if _, _, err := get(t, c, &s, "held"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		go func() { _, _, _ = c.Get(context.Background(), fmt.Sprint("miss", i), blocked) }()
	}
	eventually(t, "the misses' slots taken", func() bool { return running.Load() == maxMisses })
	s.version.Store(1)
	eventually(t, "the held page refreshed", func() bool {
		body, _, err := get(t, c, &s, "held")
		return err == nil && body == "held v1"
	})
	if n := running.Load(); n != maxMisses {
		t.Errorf("%d misses ran, want %d", n, maxMisses)
	}
}
