package routes

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/locallibrary/locallibrary/repository"
)

// countsCache keeps the catalog's record counts in process for a short
// time, with one refresh in flight however busy the site, so the home
// page's cost stays flat whatever the catalog's size. While MySQL is down
// it serves the last counts it had, marked stale, for up to staleLimit.
type countsCache struct {
	load         func(context.Context) (repository.Counts, error)
	ttl          time.Duration
	staleLimit   time.Duration
	queryTimeout time.Duration

	latest  atomic.Pointer[countsEntry]
	refresh singleflight.Group
	record  func(result string) // hit, miss, stale or error
}

type countsEntry struct {
	counts    repository.Counts
	fetchedAt time.Time
}

func newCountsCache(load func(context.Context) (repository.Counts, error), ttl, staleLimit, queryTimeout time.Duration, record func(string)) *countsCache {
	return &countsCache{load: load, ttl: ttl, staleLimit: staleLimit, queryTimeout: queryTimeout, record: record}
}

// Get returns the counts, and whether they are older than the TTL because
// the refresh failed. A refresh has its own deadline (the query timeout),
// which bounds the wait.
func (cc *countsCache) Get() (counts repository.Counts, stale bool, err error) {
	entry := cc.latest.Load()
	if entry != nil && time.Since(entry.fetchedAt) < cc.ttl {
		cc.record("hit")
		return entry.counts, false, nil
	}
	// The refresh runs on its own deadline, shared by every request that
	// waits for it.
	res, err, _ := cc.refresh.Do("counts", func() (any, error) {
		qctx, cancel := context.WithTimeout(context.Background(), cc.queryTimeout)
		defer cancel()
		counts, err := cc.load(qctx)
		if err != nil {
			return nil, err
		}
		fresh := &countsEntry{counts: counts, fetchedAt: time.Now()}
		cc.latest.Store(fresh)
		return fresh, nil
	})
	if err == nil {
		cc.record("miss")
		return res.(*countsEntry).counts, false, nil
	}
	if entry != nil && time.Since(entry.fetchedAt) < cc.staleLimit {
		cc.record("stale")
		return entry.counts, true, nil
	}
	cc.record("error")
	return repository.Counts{}, false, err
}
