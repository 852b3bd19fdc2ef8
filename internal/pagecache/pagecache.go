// Package pagecache keeps rendered pages in process memory, bounded in
// bytes, so a page that many browsers read costs MySQL one query per
// refresh instead of one per request.
//
// A page is served as it was rendered for at most TTL. From half the TTL
// on, a request for it starts one refresh in the background (at most one
// per page however busy the site, and a few in all) and is served the page
// it has; a request for a page older than the TTL waits for a refresh. While
// loads fail because the source is down, the last page is served, marked
// stale, until it is StaleLimit old; a page not held then is an error.
//
// "No such page" is an answer too, kept as a page is, so a flood of
// requests for one missing page loads it once per TTL. Loads in flight at
// once are bounded (MaxLoads), and loads of pages not held more tightly
// (MaxMisses): a flood of pages not held, missing or not, can take
// neither every connection of the source's pool nor the slots that keep
// the pages held fresh. A load that finds no slot soon fails with ErrBusy.
//
// The store is otter (github.com/maypok86/otter/v2): an S3-FIFO cache with
// a weigher for a byte bound, per-key single-flight loads and refreshes,
// which is what this needs and what hashicorp/golang-lru (no size cost, no
// loads) lacks. Pages are kept as rendered: S2 compression halved a page's
// length but not its memory (the encoder's buffer, sized for the page,
// was what the cache kept), and cost 6–8 µs per load and 1.5 µs per hit.
package pagecache

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/semaphore"
)

// ErrBusy means a load found no slot (MaxLoads, or MaxMisses for a page
// not held) free within LoadWait: the source is busy, not down.
var ErrBusy = errors.New("pagecache: too many loads in flight")

// Options configure a Cache.
type Options struct {
	// MaxBytes bounds the pages' bodies and keys, plus a small allowance
	// per entry. 0 turns the cache off: every Get loads.
	MaxBytes int64
	// TTL is the oldest a page is served while its source answers.
	TTL time.Duration
	// StaleLimit is how long a page is still served, marked stale, while
	// its source is down.
	StaleLimit time.Duration
	// LoadTimeout bounds one load: refreshes outlive the request that
	// started them.
	LoadTimeout time.Duration
	// Outage tells a failure of the source (it is down or too slow) from
	// an answer such as "not found"; only an outage makes pages stale.
	Outage func(error) bool
	// NotFound tells the load errors that say there is no such page: they
	// are kept, and returned by Get, as a page would be. nil: none.
	NotFound func(error) bool
	// MaxLoads bounds the loads (misses and refreshes) in flight at once,
	// MaxMisses (at most MaxLoads; 0: MaxLoads) those of pages not held,
	// so refreshes always have MaxLoads-MaxMisses slots. 0: no bound. A
	// load waits up to LoadWait for its slots, then fails with ErrBusy.
	MaxLoads  int
	MaxMisses int
	LoadWait  time.Duration
	// Record counts each Get's outcome: hit, miss, stale, busy or error.
	Record func(result string)
}

// entryOverhead approximates what an entry costs beside its body and key.
const entryOverhead = 96

// maxRefreshes bounds the background refreshes in flight: under a storm of
// requests for many pages, refreshes queued on a small database pool would
// otherwise pile up, each holding a goroutine and its page.
const maxRefreshes = 8

// never is a refresh interval that never comes: refreshes are started by
// Get, bounded by maxRefreshes, rather than by otter for every due page.
const never = 100 * 365 * 24 * time.Hour

// Cache holds rendered pages by key.
type Cache struct {
	pages      *otter.Cache[string, *entry] // nil when the cache is off
	opt        Options
	failing    atomic.Bool         // the last load failed for an outage
	refreshing chan struct{}       // a slot per background refresh in flight
	loads      *semaphore.Weighted // every load; nil: no bound
	misses     *semaphore.Weighted // loads of pages not held
}

// entry is a page, or the error that says there is none.
type entry struct {
	body      []byte
	err       error // a NotFound error, when there is no such page
	fetchedAt time.Time
}

// New returns a Cache; with MaxBytes 0 it holds nothing.
func New(opt Options) *Cache {
	if opt.Outage == nil {
		opt.Outage = func(error) bool { return true }
	}
	if opt.Record == nil {
		opt.Record = func(string) {}
	}
	if opt.NotFound == nil {
		opt.NotFound = func(error) bool { return false }
	}
	opt.StaleLimit = max(opt.StaleLimit, opt.TTL)
	c := &Cache{opt: opt, refreshing: make(chan struct{}, maxRefreshes)}
	if opt.MaxLoads > 0 {
		if opt.MaxMisses <= 0 || opt.MaxMisses > opt.MaxLoads {
			opt.MaxMisses = opt.MaxLoads
		}
		c.loads = semaphore.NewWeighted(int64(opt.MaxLoads))
		c.misses = semaphore.NewWeighted(int64(opt.MaxMisses))
	}
	if opt.MaxBytes <= 0 || opt.TTL <= 0 {
		return c
	}
	c.pages = otter.Must(&otter.Options[string, *entry]{
		MaximumWeight: uint64(opt.MaxBytes),
		Weigher: func(key string, e *entry) uint32 {
			return uint32(min(len(key)+len(e.body)+entryOverhead, math.MaxUint32))
		},
		ExpiryCalculator:  otter.ExpiryWriting[string, *entry](opt.StaleLimit),
		RefreshCalculator: otter.RefreshWriting[string, *entry](never),
		Logger:            &otter.NoopLogger{}, // failures are counted by Record
	})
	return c
}

// Get returns the page under key, loading it with load when the cache does
// not hold it or holds it too old. The page is the one the cache holds:
// the caller must not modify it (copying it into a response is what it is
// for). stale is set when the page is older than the TTL because its
// source is down. load must render the same page for the same key, and
// must not keep the request's state: it may run after the request that
// started it has ended.
func (c *Cache) Get(ctx context.Context, key string, load func(context.Context) ([]byte, error)) (page []byte, stale bool, err error) {
	// A fresh hit, the common case, needs no loader.
	if c.pages != nil {
		if e, ok := c.pages.GetIfPresent(key); ok && time.Since(e.fetchedAt) < c.opt.TTL/2 {
			c.opt.Record("hit")
			return e.body, false, e.err
		}
	}
	if c.pages == nil {
		e, err := c.load(ctx, true, load)
		if err != nil {
			c.recordError(err)
			return nil, false, err
		}
		c.opt.Record("miss")
		return e.body, false, e.err
	}
	loader := &pageLoader{c: c, load: load}
	e, err := c.pages.Get(ctx, key, loader)
	if err != nil {
		c.recordError(err)
		return nil, false, err
	}
	if age := time.Since(e.fetchedAt); age < c.opt.TTL {
		if loader.loaded.Load() {
			c.opt.Record("miss")
			return e.body, false, e.err
		}
		if age >= c.opt.TTL/2 {
			c.refreshAhead(key, loader)
		}
		c.opt.Record("hit")
		return e.body, false, e.err
	}
	refreshed := c.pages.Refresh(ctx, key, loader) // joins one in flight
	if !c.failing.Load() {
		select {
		case res := <-refreshed:
			if res.Err == nil && res.Value != nil {
				c.opt.Record("miss")
				return res.Value.body, false, res.Value.err
			}
		case <-ctx.Done():
		}
	}
	// The source is down or busy: what it last said stands in.
	c.opt.Record("stale")
	if e.err != nil {
		return nil, false, e.err
	}
	return e.body, true, nil
}

func (c *Cache) recordError(err error) {
	if errors.Is(err, ErrBusy) {
		c.opt.Record("busy")
		return
	}
	c.opt.Record("error")
}

// pageLoader is one Get's loader: Load for a page not held (a miss),
// Reload for one held (a refresh). loaded is set when either ran.
type pageLoader struct {
	c      *Cache
	load   func(context.Context) ([]byte, error)
	loaded atomic.Bool
}

func (l *pageLoader) Load(ctx context.Context, _ string) (*entry, error) {
	l.loaded.Store(true)
	return l.c.load(ctx, true, l.load)
}

func (l *pageLoader) Reload(ctx context.Context, _ string, _ *entry) (*entry, error) {
	l.loaded.Store(true)
	return l.c.load(ctx, false, l.load)
}

// refreshAhead starts a background refresh of key, or joins the one in
// flight, if fewer than maxRefreshes run; otherwise a later request will.
func (c *Cache) refreshAhead(key string, loader *pageLoader) {
	select {
	case c.refreshing <- struct{}{}:
		done := c.pages.Refresh(context.Background(), key, loader)
		go func() {
			<-done
			<-c.refreshing
		}()
	default:
	}
}

// load runs one load, once it has its slots, on a deadline of its own,
// and notes whether the source is failing. miss: the page is not held.
func (c *Cache) load(ctx context.Context, miss bool, load func(context.Context) ([]byte, error)) (*entry, error) {
	if c.loads != nil {
		release, err := c.acquire(ctx, miss)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	if c.opt.LoadTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), c.opt.LoadTimeout)
		defer cancel()
	}
	body, err := load(ctx)
	if err != nil && c.opt.NotFound(err) {
		c.failing.Store(false)
		return &entry{err: err, fetchedAt: time.Now()}, nil
	}
	if err != nil {
		if c.opt.Outage(err) {
			c.failing.Store(true)
		}
		return nil, err
	}
	c.failing.Store(false)
	return &entry{body: body, fetchedAt: time.Now()}, nil
}

// acquire takes a load's slots within LoadWait: a miss's first, then the
// one every load takes.
func (c *Cache) acquire(ctx context.Context, miss bool) (release func(), err error) {
	wait, cancel := context.WithTimeout(ctx, c.opt.LoadWait)
	defer cancel()
	if miss {
		if c.misses.Acquire(wait, 1) != nil {
			return nil, ErrBusy
		}
	}
	if c.loads.Acquire(wait, 1) != nil {
		if miss {
			c.misses.Release(1)
		}
		return nil, ErrBusy
	}
	return func() {
		c.loads.Release(1)
		if miss {
			c.misses.Release(1)
		}
	}, nil
}

// Bytes is the approximate weight of the pages held.
func (c *Cache) Bytes() int64 {
	if c.pages == nil {
		return 0
	}
	return int64(c.pages.WeightedSize())
}
