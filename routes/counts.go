package routes

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/locallibrary/locallibrary/repository"
)

// countsCache keeps the catalog's record counts in process, with one
// refresh in flight however busy the site, so the home page's cost stays
// flat whatever the catalog's size.
//
// Counts older than the TTL are still served while a refresh runs in the
// background: at a million copies the count takes a good part of a second,
// and no page should wait for it. Only a page with no counts at all, or
// counts past the stale limit, waits for the refresh, and then at most the
// query timeout. While refreshes fail (MySQL down) the last counts are
// served marked stale, up to the stale limit.
type countsCache struct {
	load           func(context.Context) (repository.Counts, error)
	ttl            time.Duration
	staleLimit     time.Duration
	queryTimeout   time.Duration // how long a page waits for a refresh
	refreshTimeout time.Duration // how long a refresh may run

	latest  atomic.Pointer[countsEntry]
	failing atomic.Bool // the last refresh failed
	refresh singleflight.Group
	record  func(result string) // hit, miss, stale or error
}

type countsEntry struct {
	counts    repository.Counts
	fetchedAt time.Time
}

// refreshTimeoutFloor lets a refresh outlive the pages that wait for it: a
// count of a cold million-row index can take longer than a page may wait,
// and a refresh abandoned every time would never finish.
const refreshTimeoutFloor = 30 * time.Second

func newCountsCache(load func(context.Context) (repository.Counts, error), ttl, staleLimit, queryTimeout time.Duration, record func(string)) *countsCache {
	return &countsCache{load: load, ttl: ttl, staleLimit: max(staleLimit, ttl), queryTimeout: queryTimeout,
		refreshTimeout: max(queryTimeout, refreshTimeoutFloor), record: record}
}

// Get returns the counts, and whether they are stale: kept from before a
// refresh that failed.
func (cc *countsCache) Get() (counts repository.Counts, stale bool, err error) {
	entry := cc.latest.Load()
	if entry != nil {
		age := time.Since(entry.fetchedAt)
		if age < cc.ttl {
			cc.record("hit")
			return entry.counts, false, nil
		}
		if age < cc.staleLimit {
			cc.refresh.DoChan("counts", cc.fetch) // in the background; joins one in flight
			stale = cc.failing.Load()
			if stale {
				cc.record("stale")
			} else {
				cc.record("hit")
			}
			return entry.counts, stale, nil
		}
	}
	select {
	case res := <-cc.refresh.DoChan("counts", cc.fetch):
		if res.Err == nil {
			cc.record("miss")
			return res.Val.(*countsEntry).counts, false, nil
		}
		err = res.Err
	case <-time.After(cc.queryTimeout):
		err = context.DeadlineExceeded
	}
	cc.record("error")
	return repository.Counts{}, false, err
}

// fetch runs one refresh on its own deadline and keeps its result.
func (cc *countsCache) fetch() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cc.refreshTimeout)
	defer cancel()
	counts, err := cc.load(ctx)
	if err != nil {
		cc.failing.Store(true)
		return nil, err
	}
	fresh := &countsEntry{counts: counts, fetchedAt: time.Now()}
	cc.latest.Store(fresh)
	cc.failing.Store(false)
	return fresh, nil
}
