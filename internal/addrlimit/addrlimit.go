// Package addrlimit rations an action per client address: here, the new
// sessions a site stores, so that one address, or one allocation of
// addresses, cannot fill memcached with sessions and evict everybody
// else's.
//
// # Budgets by prefix
//
// An action is allowed only if every prefix the address belongs to still
// has budget, and then it is taken from all of them:
//
//	IPv6  /64 (a subscriber's LAN)  the address budget
//	      /56 (a home's delegation) 2× the address budget
//	      /48 (a site)              4× the address budget
//	IPv4  /32 (one address, a NAT)  the address budget
//	      /24                       4× the address budget
//
// So one /48 holding 65,536 /64s gets four addresses' worth in all, however
// many of its addresses it uses, and its neighbours keep theirs.
//
// # Bounded memory that never forgets a debt
//
// Each level keeps its budgets in a fixed table, allocated once: two rows
// of slots, and a prefix owns one slot in each row, chosen by a hash with a
// seed made at start (so a client cannot aim at another's slots). A slot
// holds one number, the time at which its budget is full again (the
// "theoretical arrival time" of the generic cell rate algorithm); taking
// one action moves it one interval later, time moves it back. A prefix may
// act when both its slots have room, and acting charges both.
//
// Prefixes that share a slot share its budget. That only ever makes limits
// stricter: a slot's time is at least what the prefix's own actions alone
// would have made it, so a prefix is never allowed more than its budget
// (the count-min sketch's one-sided error, applied to rate limits). Nothing
// is ever evicted, so no prefix starts again with a full budget because
// others pushed it out, which is what a bounded LRU of buckets does. The
// cost of the bound: when far more prefixes are busy than a row has slots,
// an innocent prefix whose two slots are both shared with busy ones is
// refused too. Refused here means served without a stored session, never
// a page refused.
package addrlimit

import (
	"errors"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// level is one prefix length with its budget and table.
type level struct {
	bits     int   // prefix length
	interval int64 // nanoseconds one action costs
	slack    int64 // how far ahead of now a slot's time may be and still allow: (burst-1) intervals
	rows     [2][]int64
}

// Limiter allows each address burst actions at once and perMinute a
// minute after that, within the larger budgets of its wider prefixes. It
// is safe for concurrent use.
type Limiter struct {
	now  func() time.Time // a fake clock in tests
	seed maphash.Seed

	mu     sync.Mutex // makes "check every slot, then charge them all" one step
	v4, v6 []*level   // narrowest first
	mask   uint64     // a row has mask+1 slots
}

// Multiples of the address budget that the wider prefixes get.
const (
	site56Multiple = 2
	wideMultiple   = 4 // a /48, a /24
)

// New returns a Limiter whose tables have room for about addresses busy
// prefixes per level before sharing slots starts to make limits stricter
// (16 bytes per address and level). perMinute, burst and addresses must
// be at least 1.
func New(perMinute, burst, addresses int) (*Limiter, error) {
	if perMinute < 1 || burst < 1 || addresses < 1 {
		return nil, errors.New("addrlimit: perMinute, burst and addresses must be at least 1")
	}
	width := uint64(1) << bits.Len64(uint64(addresses-1)) // the next power of two
	newLevel := func(prefix, multiple int) *level {
		l := &level{bits: prefix, interval: int64(time.Minute) / int64(perMinute*multiple)}
		l.slack = int64(burst*multiple-1) * l.interval
		for i := range l.rows {
			l.rows[i] = make([]int64, width)
		}
		return l
	}
	return &Limiter{
		now:  time.Now,
		seed: maphash.MakeSeed(),
		mask: width - 1,
		v4:   []*level{newLevel(32, 1), newLevel(24, wideMultiple)},
		v6:   []*level{newLevel(64, 1), newLevel(56, site56Multiple), newLevel(48, wideMultiple)},
	}, nil
}

// Allow reports whether addr may act now, and if so charges it. Requests
// whose address does not parse (no client address known) share one
// address budget.
func (l *Limiter) Allow(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		a = netip.IPv4Unspecified() // every unknown client is one address
	}
	a = a.Unmap().WithZone("")
	levels := l.v6
	if a.Is4() {
		levels = l.v4
	}
	// Find each level's two slots before taking the lock.
	var slots [3][2]*int64
	for i, lv := range levels {
		p, _ := a.Prefix(lv.bits)
		h := maphash.Comparable(l.seed, prefixKey{p.Addr().As16(), uint8(lv.bits)})
		slots[i] = [2]*int64{&lv.rows[0][h&l.mask], &lv.rows[1][(h>>32)&l.mask]}
	}
	now := l.now().UnixNano()

	l.mu.Lock()
	defer l.mu.Unlock()
	for i, lv := range levels {
		for _, s := range slots[i] {
			if *s-now > lv.slack {
				return false
			}
		}
	}
	for i, lv := range levels {
		for _, s := range slots[i] {
			*s = max(*s, now) + lv.interval
		}
	}
	return true
}

// prefixKey is what a prefix is hashed as: its address and its length
// (the same /48 and /64 of one address are different keys, in different
// tables anyway).
type prefixKey struct {
	addr [16]byte
	bits uint8
}
