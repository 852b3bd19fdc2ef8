package session

import (
	"encoding/binary"
	"time"
)

// entry is what a session stores: a few bytes, the same for every browser
// give or take the width of a number.
//
// Encoding (version 1): the version byte, a flags byte, a byte that held
// the chosen page size and is now always 0 (the size moved to a cookie,
// PerPageCookie; the byte stays so that replicas of either release read
// each other's entries), then the time of the last write as a uvarint of
// Unix seconds. Anything else decodes as no entry: a new session begins.
type entry struct {
	savedAt  int64 // Unix seconds of the last write
	returned bool  // the browser came back after the session was created
	notice   bool  // the demo notice was dismissed ("Got it")
}

const (
	entryVersion  = 1
	flagReturned  = 1 << 0
	flagNotice    = 1 << 1
	maxEntryBytes = 3 + binary.MaxVarintLen64
)

// encode appends the entry's bytes to b.
func (e entry) encode(b []byte) []byte {
	var flags byte
	if e.returned {
		flags |= flagReturned
	}
	if e.notice {
		flags |= flagNotice
	}
	b = append(b, entryVersion, flags, 0)
	return binary.AppendUvarint(b, uint64(max(e.savedAt, 0)))
}

// decodeEntry reads what encode wrote, or reports that raw is not an entry
// of this version.
func decodeEntry(raw []byte) (entry, bool) {
	if len(raw) < 4 || raw[0] != entryVersion || raw[1]&^(flagReturned|flagNotice) != 0 {
		return entry{}, false
	}
	savedAt, n := binary.Uvarint(raw[3:])
	if n <= 0 || 3+n != len(raw) || savedAt > 1<<62 {
		return entry{}, false
	}
	return entry{
		savedAt:  int64(savedAt),
		returned: raw[1]&flagReturned != 0,
		notice:   raw[1]&flagNotice != 0,
	}, true
}

// age is how long ago the entry was written.
func (e entry) age(now time.Time) time.Duration {
	return now.Sub(time.Unix(e.savedAt, 0))
}
