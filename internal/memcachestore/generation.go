package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// Reset, fiber.Storage's "delete all keys", cannot delete: memcached can
// neither list keys nor delete by prefix, and flush_all would wipe every
// app's data on a shared memcached. Instead every data key starts with a
// generation tag ("0:" after KeyPrefix), and Reset moves the generation
// on, kept in memcached under KeyPrefix+"gen" (never a data key: those
// start with a digit): the old keys are out of reach at once and expire or
// are evicted in their own time.

// followEvery is how often a Storage reads the generation, to follow
// another process's Reset.
const followEvery = 30 * time.Second

// genKey is the generation's key, after KeyPrefix.
const genKey = "gen"

// setGeneration makes g the generation of the keys s makes from now on:
// they are KeyPrefix, g and a colon before the caller's key (a fresh
// memcached is in generation 0).
func (s *Storage) setGeneration(g uint64) {
	ns := s.prefix + strconv.FormatUint(g, 10) + ":"
	s.gen.Store(g)
	s.ns.Store(&ns)
}

// Reset makes every key stored so far unreachable, for this Storage at
// once and for others on the same servers within followEvery (or at their
// New). It fails, changing nothing, while the generation's node cannot be
// reached.
func (s *Storage) Reset() (err error) {
	defer s.record("reset", time.Now(), &err)
	cur := s.gen.Load()
	next, _, err := s.increment(s.prefix+genKey, genKey, 0)
	if err != nil {
		return fmt.Errorf("memcachestore: reset: %w", err)
	}
	if next <= cur { // the stored generation was evicted, or is behind
		next = cur + 1
		item := &memcache.Item{Key: s.prefix + genKey, Value: strconv.AppendUint(nil, next, 10)}
		errs := s.onEach(s.owners(genKey), func(_ int, c *memcache.Client) error { return c.Set(item) })
		if err := anySucceeded("reset", errs); err != nil {
			return err
		}
	}
	s.setGeneration(next)
	return nil
}

// readGeneration follows the stored generation when it is ahead of s's,
// and puts s's back when it was evicted, so that an eviction never brings
// back the keys of an older one.
func (s *Storage) readGeneration() error {
	val, err := s.get(s.prefix+genKey, genKey)
	if err != nil {
		return err
	}
	cur := s.gen.Load()
	if val == nil {
		if cur == 0 {
			return nil
		}
		item := &memcache.Item{Key: s.prefix + genKey, Value: strconv.AppendUint(nil, cur, 10)}
		errs := s.onEach(s.owners(genKey), func(_ int, c *memcache.Client) error {
			if err := c.Add(item); !errors.Is(err, memcache.ErrNotStored) {
				return err
			}
			return nil
		})
		return anySucceeded("generation", errs)
	}
	g, err := strconv.ParseUint(string(val), 10, 64)
	if err != nil {
		return fmt.Errorf("memcachestore: generation %q: %w", val, err)
	}
	if g > cur {
		s.setGeneration(g)
	}
	return nil
}

// followGeneration reads the generation every period until ctx ends. A
// read that fails is retried at the next tick; until one succeeds, keys
// are made in generation 0.
func (s *Storage) followGeneration(ctx context.Context, every time.Duration) {
	defer close(s.followed)
	if every <= 0 {
		every = followEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = s.readGeneration()
	}
}
