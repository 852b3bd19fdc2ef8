package addrlimit

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a fake time the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(t *testing.T, perMinute, burst, addresses int) (*Limiter, *clock) {
	t.Helper()
	l, err := New(perMinute, burst, addresses)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l.now = c.now
	return l, c
}

// allowed counts how many of n tries addr is allowed.
func allowed(l *Limiter, addr string, n int) int {
	got := 0
	for range n {
		if l.Allow(addr) {
			got++
		}
	}
	return got
}

func TestBurstThenRate(t *testing.T) {
	l, c := newTest(t, 60, 50, 1<<16) // wide: the two addresses must not share slots by chance
	// An office of 50 behind one NAT, all at once: every one gets a session.
	if got := allowed(l, "203.0.113.7", 50); got != 50 {
		t.Fatalf("burst: %d of 50 allowed", got)
	}
	// A flood from the same address: nothing more until tokens come back.
	if got := allowed(l, "203.0.113.7", 1000); got != 0 {
		t.Fatalf("past the burst: %d of 1000 allowed", got)
	}
	c.t = c.t.Add(10 * time.Second) // 60 a minute: 10 more
	if got := allowed(l, "203.0.113.7", 1000); got != 10 {
		t.Fatalf("10s later: %d allowed, want 10", got)
	}
	// Another address is not affected by the first one's flood.
	if got := allowed(l, "198.51.100.1", 50); got != 50 {
		t.Fatalf("another address: %d of 50 allowed", got)
	}
}

func TestAddressesShareBuckets(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"same IPv4", "192.0.2.1", "192.0.2.1", true},
		{"neighbouring IPv4", "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped IPv6 is IPv4", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"one IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"two IPv6 /64s", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"zone ignored", "fe80::1%eth0", "fe80::1", true},
		{"unknown addresses share one", "", "not an address", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Room for 65,536 prefixes: two addresses then share both their
			// slots (as the tables allow, only tightening) with a chance
			// under 1e-9, not the 1 in 16,384 of 128-slot rows.
			l, _ := newTest(t, 1, 1, 1<<16)
			if !l.Allow(tt.a) {
				t.Fatalf("first Allow(%q) refused", tt.a)
			}
			if got := l.Allow(tt.b); got == tt.same {
				t.Errorf("after %q, Allow(%q) = %v; want shared bucket = %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
}

// TestWiderPrefixesHaveTheirOwnBudget: addresses of one /56, /48 or IPv4
// /24 together get the wider prefix's budget, not one each.
func TestWiderPrefixesHaveTheirOwnBudget(t *testing.T) {
	const burst = 10
	tests := []struct {
		name  string
		addrs func(i int) string
		want  int
	}{
		{"256 /64s of one /56", func(i int) string { return fmt.Sprintf("2001:db8:0:%x::1", i) }, site56Multiple * burst},
		{"256 /56s of one /48", func(i int) string { return fmt.Sprintf("2001:db8:0:%x00::1", i) }, wideMultiple * burst},
		{"256 addresses of one /24", func(i int) string { return fmt.Sprintf("192.0.2.%d", i) }, wideMultiple * burst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newTest(t, 1, burst, 1<<16)
			got := 0
			for i := range 256 {
				got += allowed(l, tt.addrs(i), burst)
			}
			if got != tt.want {
				t.Errorf("%d allowed in all, want the wider prefix's %d", got, tt.want)
			}
		})
	}
}

// TestFloodFromOneSlash48: first visits from all 65,536 /64s of one /48
// get the /48's budget in all, while another /48, another /64's
// neighbours elsewhere and IPv4 clients keep theirs.
func TestFloodFromOneSlash48(t *testing.T) {
	const perMinute, burst = 120, 100
	l, c := newTest(t, perMinute, burst, 10_000)
	got := 0
	for round := range 3 {
		for i := range 1 << 16 {
			if l.Allow(fmt.Sprintf("2001:db8:66:%x::%x", i, round+1)) {
				got++
			}
		}
		c.t = c.t.Add(time.Second)
	}
	// 3 s at the /48's 4×120 a minute: 24 more than the burst, at most.
	if limit := wideMultiple*burst + 3*wideMultiple*perMinute/60; got > limit {
		t.Errorf("the flooding /48 got %d new sessions, more than its budget %d", got, limit)
	}
	for _, other := range []string{"2001:db8:67::1", "2001:db8:1:2::3", "198.51.100.7", "203.0.113.9"} {
		if n := allowed(l, other, burst); n != burst {
			t.Errorf("%s, outside the flood: %d of %d allowed", other, n, burst)
		}
	}
}

// TestNoFreshBudgetAfterOthersCome: an exhausted address stays exhausted
// however many other addresses arrive after it (a bounded LRU of buckets
// forgot it and gave it a full one).
func TestNoFreshBudgetAfterOthersCome(t *testing.T) {
	l, _ := newTest(t, 1, 5, 1000)
	if got := allowed(l, "2001:db8:66:1::1", 10); got != 5 {
		t.Fatalf("burst: %d of 5 allowed", got)
	}
	for i := range 200_000 {
		l.Allow(fmt.Sprintf("10.%d.%d.1", i>>8&0xff, i&0xff))
		l.Allow(fmt.Sprintf("2001:db8:%x::1", 0x1000+i))
	}
	if l.Allow("2001:db8:66:1::1") || l.Allow("2001:db8:66:1::2") {
		t.Error("the exhausted /64 was given a fresh budget after 400,000 other addresses")
	}
}

// TestSharedSlotsOnlyMakeLimitsStricter drives a limiter whose tables are
// far too small (every slot shared) with random clients and times, and
// checks that no prefix, at any level, is ever allowed more than its own
// budget: burst plus the rate times the time since it began.
func TestSharedSlotsOnlyMakeLimitsStricter(t *testing.T) {
	const perMinute, burst = 6, 3
	l, c := newTest(t, perMinute, burst, 2)
	start := c.t
	rng := rand.New(rand.NewPCG(1, 2))
	type key struct {
		p        netip.Prefix
		multiple int
	}
	granted := map[key]int{}
	addrs := make([]netip.Addr, 64)
	for i := range addrs {
		if i%2 == 0 {
			addrs[i] = netip.AddrFrom4([4]byte{192, 0, byte(2 + rng.IntN(3)), byte(rng.IntN(4))})
		} else {
			addrs[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(2)), 0, byte(rng.IntN(3)), 15: 1})
		}
	}
	allowedAny := false
	for range 20_000 {
		c.t = c.t.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		a := addrs[rng.IntN(len(addrs))]
		if !l.Allow(a.String()) {
			continue
		}
		allowedAny = true
		levels := map[int]int{32: 1, 24: wideMultiple}
		if a.Is6() {
			levels = map[int]int{64: 1, 56: site56Multiple, 48: wideMultiple}
		}
		elapsed := c.t.Sub(start)
		for bits, multiple := range levels {
			p, _ := a.Prefix(bits)
			k := key{p, multiple}
			granted[k]++
			budget := burst*multiple + int(elapsed*time.Duration(perMinute*multiple)/time.Minute)
			if granted[k] > budget {
				t.Fatalf("%s allowed %d times in %s, over its budget %d", p, granted[k], elapsed, budget)
			}
		}
	}
	if !allowedAny {
		t.Fatal("nothing was ever allowed: the test proves nothing")
	}
}

func TestConcurrentUse(t *testing.T) {
	l, err := New(60, 20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := range 8 {
		wg.Go(func() {
			n := allowed(l, "2001:db8:5::1", 100)
			n += allowed(l, fmt.Sprintf("192.0.2.%d", g), 10)
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	// The /64 has a burst of 20, each IPv4 address 10 (the /24, 80 in all,
	// is not reached); the clock moves a little while the test runs.
	if total < 20+8*10 || total > 20+8*10+2 {
		t.Errorf("%d allowed concurrently, want about %d", total, 20+8*10)
	}
}

func TestNewRejectsZeroSizes(t *testing.T) {
	for _, args := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		if _, err := New(args[0], args[1], args[2]); err == nil {
			t.Errorf("New%v succeeded", args)
		}
	}
}
