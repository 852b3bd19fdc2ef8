package session

import "time"

// Store keeps session entries and visit counters. memcachestore.Storage is
// one, shared by every replica; MemoryStore is one for a single process.
//
// Keys are made by this package only (see entryKey, visitKey); a store
// that spreads keys over several servers places them by Placement, so a
// session's entry and its counter live, and move, together.
type Store interface {
	// Get returns the value under key, or nil, nil when there is none.
	Get(key string) ([]byte, error)
	// Set stores val under key for ttl.
	Set(key string, val []byte, ttl time.Duration) error
	// Delete removes key; a missing key is not an error.
	Delete(key string) error
	// Touch gives key a new lifetime of ttl; a missing key is not an error.
	Touch(key string, ttl time.Duration) error
	// Increment adds one to the counter under key and returns its new
	// value, creating it at 1 with lifetime ttl when missing. Concurrent
	// increments are never lost.
	Increment(key string, ttl time.Duration) (uint64, error)
	// GetAndIncrement reads getKey and adds one to the counter incrKey, in
	// one round trip where the store can: a returning browser's home page
	// needs exactly these two. A missing counter is not created (counted
	// is false then): only the caller can tell whether the value read
	// belongs to a real session.
	GetAndIncrement(getKey, incrKey string) (val []byte, count uint64, counted bool, err error)
}

// The key scheme: a session's entry is stored under its id, its visit
// counter under visitPrefix and the id. Ids are checked (validID) before
// any key is made from them, so no key falls outside these two forms.
const visitPrefix = "v:"

// EntryKey is the key of session id's entry.
func EntryKey(id string) string { return id }

// VisitKey is the key of session id's visit counter.
func VisitKey(id string) string { return visitPrefix + id }

// Placement is the part of a key that decides where a store keeps it: the
// session id. A store on several servers that places every key by its
// Placement keeps a session's entry and visit counter on the same servers,
// so that GetAndIncrement is one round trip and a resize moves both.
func Placement(key string) string {
	if len(key) == len(visitPrefix)+idLen && key[:len(visitPrefix)] == visitPrefix {
		return key[len(visitPrefix):]
	}
	return key
}
