package memcachestore

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
)

// faultyNet is a dialer whose connections to one address can be made to
// break (as if the node died, keeping its data), and whose next "gets" to
// one address can be made to fail once (as if the node timed out on it).
type faultyNet struct {
	mu       sync.Mutex
	down     map[string]bool
	failGets map[string]bool
}

func newFaultyNet() *faultyNet {
	return &faultyNet{down: map[string]bool{}, failGets: map[string]bool{}}
}

func (f *faultyNet) setDown(addr string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[addr] = down
}

func (f *faultyNet) failNextGets(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failGets[addr] = true
}

func (f *faultyNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f.mu.Lock()
	down := f.down[addr]
	f.mu.Unlock()
	if down {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &faultyConn{Conn: c, f: f, addr: addr}, nil
}

type faultyConn struct {
	net.Conn
	f    *faultyNet
	addr string
}

func (c *faultyConn) Write(p []byte) (int, error) {
	c.f.mu.Lock()
	down := c.f.down[c.addr]
	failGets := c.f.failGets[c.addr] && strings.HasPrefix(string(p), "gets ")
	if failGets {
		c.f.failGets[c.addr] = false
	}
	c.f.mu.Unlock()
	switch {
	case down:
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	case failGets:
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: errTimeoutForTest{}}
	}
	return c.Conn.Write(p)
}

type errTimeoutForTest struct{}

func (errTimeoutForTest) Error() string   { return "i/o timeout (injected)" }
func (errTimeoutForTest) Timeout() bool   { return true }
func (errTimeoutForTest) Temporary() bool { return true }

// owing is a Storage on three nodes that owes one copy of the counter
// "visits": three visits counted on both copies, then three with the
// second copy's node out of use (it keeps its data).
type owing struct {
	procs  []*memcachedtest.Server
	addrs  []string
	net    *faultyNet
	probed probes
	s      *Storage
	owners []*node // "visits"'s: the owed copy's node second
	count  func(when string)
}

func newOwing(t *testing.T) *owing {
	o := &owing{net: newFaultyNet(), probed: make(probes, 1)}
	o.procs, o.addrs = memcachedtest.Cluster(t, 3)
	o.s = mustNewStorage(t, Config{Servers: o.addrs, Replicas: 2}, hooks{dial: o.net.dial, probed: o.probed.done})
	var want uint64
	o.count = func(when string) { // a visit, which must be the next count
		t.Helper()
		want++
		if n, err := o.s.Increment("visits", time.Hour); err != nil || n != want {
			t.Fatalf("Increment %s = %d, %v; want %d", when, n, err, want)
		}
	}
	for range 3 {
		o.count("before")
	}
	o.owners = o.s.owners("visits")
	o.net.setDown(o.addr(1), true)
	_ = o.s.Touch("visits", time.Hour) // the node is found out: increments skip it, certainly missed
	if !o.owners[1].down.Load() {
		t.Fatal("node not down")
	}
	for range 3 {
		o.count("with a copy's node out of use")
	}
	return o
}

// addr is the address of "visits"'s i-th owner.
func (o *owing) addr(i int) string { return o.addrs[o.s.ringIndex(o.owners[i])] }

// TestOwedCopyWhoseRaiseFailsStaysOwed: when the owed copy's node is back,
// the raise that should bring it up fails once (a timeout; under load it
// would be errPoolBusy). The count stays owed, so the copy is raised at
// the next visit, and losing the other copy later does not send the count
// back.
func TestOwedCopyWhoseRaiseFailsStaysOwed(t *testing.T) {
	o := newOwing(t)
	o.net.setDown(o.addr(1), false)
	o.probed.waitUp(t, o.owners[1])
	o.net.failNextGets(o.addr(1))
	o.count("once the node is back, its raise failing")
	o.probed.waitUp(t, o.owners[1])
	o.count("after")
	o.procs[o.s.ringIndex(o.owners[0])].Kill()
	o.count("on the once-owed copy alone")
}

// TestOwedCountHoldsWhenItsNodeIsStillDown: while the owed copy's node is
// still out of use, the other restarts empty. The replica knows the count
// was 6, so it returns 7, not the 1 the restarted node says.
func TestOwedCountHoldsWhenItsNodeIsStillDown(t *testing.T) {
	o := newOwing(t)
	first := o.s.ringIndex(o.owners[0])
	o.procs[first] = o.procs[first].Restart(t)
	_ = o.s.Touch("visits", time.Hour) // finds the old connections dead
	o.probed.waitUp(t, o.owners[0])
	o.count("the other node restarted empty")
}

// rawTTL is the remaining TTL memcached reports for key ("-1": never expires).
func rawTTL(t *testing.T, addr, key string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "mg %s t v\r\n", key)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "t") {
			return f[1:]
		}
	}
	return line
}

// TestRaisedOwedCopyKeepsItsExpiry: raising an owed copy rewrites it
// (compare-and-swap) with the expiry GetAndIncrement counts with, which
// must be the repair lifetime, not 0 ("never expires").
func TestRaisedOwedCopyKeepsItsExpiry(t *testing.T) {
	_, addrs := memcachedtest.Cluster(t, 3)
	fn := newFaultyNet()
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2, RepairTTL: time.Hour}, hooks{dial: fn.dial, probed: probed.done})
	if err := s.Set("sess", []byte("data"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Increment("v:sess", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	owners := s.owners("v:sess")
	second := addrs[s.ringIndex(owners[1])]
	fn.setDown(second, true)
	_ = s.Touch("v:sess", time.Hour)
	for range 2 {
		if _, _, _, err := s.GetAndIncrement("sess", "v:sess"); err != nil {
			t.Fatal(err)
		}
	}
	fn.setDown(second, false)
	probed.waitUp(t, owners[1])
	if _, n, _, err := s.GetAndIncrement("sess", "v:sess"); err != nil || n != 6 {
		t.Fatalf("= %d, %v", n, err)
	}
	if got := rawGet(t, second, "v:sess"); got != "6" {
		t.Fatalf("raised copy = %q", got)
	}
	if ttl := rawTTL(t, second, "0:v:sess"); ttl == "-1" {
		t.Fatalf("the raised copy's TTL = %s (never expires); it had an hour", ttl)
	}
}
