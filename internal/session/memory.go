package session

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemoryStore is a Store in the process's memory, for a single process
// (the embedded default) and for tests. Expired entries are dropped as
// they are met and in a sweep at most once per sweepEvery.
type MemoryStore struct {
	mu        sync.Mutex
	items     map[string]*memoryItem
	nextSweep time.Time
	now       func() time.Time
}

type memoryItem struct {
	val     []byte
	expires time.Time
}

const sweepEvery = time.Minute

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{items: make(map[string]*memoryItem), now: time.Now}
}

// get returns the live item under key; the caller holds mu.
func (m *MemoryStore) get(key string, now time.Time) (*memoryItem, bool) {
	it, ok := m.items[key]
	if ok && !now.Before(it.expires) {
		delete(m.items, key)
		return nil, false
	}
	return it, ok
}

// put stores val under key; the caller holds mu.
func (m *MemoryStore) put(key string, val []byte, ttl time.Duration, now time.Time) {
	if now.After(m.nextSweep) {
		for k, it := range m.items {
			if !now.Before(it.expires) {
				delete(m.items, k)
			}
		}
		m.nextSweep = now.Add(sweepEvery)
	}
	if it, ok := m.items[key]; ok { // updated in place: the map keeps its own key
		it.val, it.expires = val, now.Add(ttl)
		return
	}
	// The key may point into a request's buffer (Fiber's strings do): keep a copy.
	m.items[strings.Clone(key)] = &memoryItem{val: val, expires: now.Add(ttl)}
}

// Get implements Store.
func (m *MemoryStore) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if it, ok := m.get(key, m.now()); ok {
		return it.val, nil
	}
	return nil, nil
}

// Set implements Store. The value is copied.
func (m *MemoryStore) Set(key string, val []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(key, append([]byte(nil), val...), ttl, m.now())
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}

// Touch implements Store.
func (m *MemoryStore) Touch(key string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if it, ok := m.get(key, now); ok {
		it.expires = now.Add(ttl)
	}
	return nil
}

// Increment implements Store: a later increment keeps the lifetime the
// counter was created with, as in memcached.
func (m *MemoryStore) Increment(key string, ttl time.Duration) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if n, ok := m.incr(key, now); ok {
		return n, nil
	}
	m.put(key, []byte("1"), ttl, now)
	return 1, nil
}

// incr adds one to an existing counter; the caller holds mu.
func (m *MemoryStore) incr(key string, now time.Time) (uint64, bool) {
	it, ok := m.get(key, now)
	if !ok {
		return 0, false
	}
	n, _ := strconv.ParseUint(string(it.val), 10, 64) // only counters are incremented
	n++
	it.val = strconv.AppendUint(nil, n, 10) // a new slice: Get may have returned the old one
	return n, true
}

// GetAndIncrement implements Store, atomically.
func (m *MemoryStore) GetAndIncrement(getKey, incrKey string) ([]byte, uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var val []byte
	if it, ok := m.get(getKey, now); ok {
		val = it.val
	}
	n, counted := m.incr(incrKey, now)
	return val, n, counted, nil
}
