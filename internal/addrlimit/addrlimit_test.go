package addrlimit

import (
	"fmt"
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
	l, c := newTest(t, 60, 50, 100)
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
			l, _ := newTest(t, 1, 1, 100)
			if !l.Allow(tt.a) {
				t.Fatalf("first Allow(%q) refused", tt.a)
			}
			if got := l.Allow(tt.b); got == tt.same {
				t.Errorf("after %q, Allow(%q) = %v; want shared bucket = %v", tt.a, tt.b, got, tt.same)
			}
		})
	}
}

func TestMemoryIsBounded(t *testing.T) {
	l, _ := newTest(t, 1, 1, 10)
	for i := range 1000 {
		l.Allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	if n := l.buckets.Len(); n != 10 {
		t.Fatalf("%d buckets kept; want the bound, 10", n)
	}
	// The most recent addresses are remembered: still out of tokens.
	if l.Allow("10.0.3.231") {
		t.Error("a recent address got a fresh bucket")
	}
}

func TestNewRejectsZeroSize(t *testing.T) {
	if _, err := New(1, 1, 0); err == nil {
		t.Error("New with room for no addresses succeeded")
	}
}
