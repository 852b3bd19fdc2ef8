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

// TestOwedCopyWhoseRaiseFailsStaysOwed: a node is out of use while three
// visits are counted (it keeps its data); when it is back, the raise that
// should bring it up fails once (a timeout; under load it would be
// errPoolBusy). The count stays owed, so the copy is raised at the next
// visit, and losing the other copy later does not send the count back.
func TestOwedCopyWhoseRaiseFailsStaysOwed(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	fn := newFaultyNet()
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{dial: fn.dial, probed: probed.done})
	var want uint64
	count := func(when string) {
		t.Helper()
		want++
		if n, err := s.Increment("visits", time.Hour); err != nil || n != want {
			t.Fatalf("Increment %s = %d, %v; want %d", when, n, err, want)
		}
	}
	for range 3 {
		count("before")
	}
	owners := s.owners("visits")
	second := addrs[s.ringIndex(owners[1])]
	fn.setDown(second, true)
	_ = s.Touch("visits", time.Hour) // the node is found out: increments skip it, certainly missed
	if !owners[1].down.Load() {
		t.Fatal("node not down")
	}
	for range 3 {
		count("with a copy's node out of use")
	}
	fn.setDown(second, false)
	probed.waitUp(t, owners[1])
	fn.failNextGets(second)
	count("once the node is back, its raise failing")
	probed.waitUp(t, owners[1])
	count("after")
	procs[s.ringIndex(owners[0])].Kill()
	count("on the once-owed copy alone")
}

// TestOwedCountHoldsWhenItsNodeIsStillDown: one copy's node is out of use
// (this replica owes it the count), then the other restarts empty. The
// replica knows the count was 6, so it returns 7, not the 1 the restarted
// node says.
func TestOwedCountHoldsWhenItsNodeIsStillDown(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	fn := newFaultyNet()
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{dial: fn.dial, probed: probed.done})
	var want uint64
	count := func(when string) {
		t.Helper()
		want++
		if n, err := s.Increment("visits", time.Hour); err != nil || n != want {
			t.Fatalf("Increment %s = %d, %v; want %d", when, n, err, want)
		}
	}
	for range 3 {
		count("before")
	}
	owners := s.owners("visits")
	fn.setDown(addrs[s.ringIndex(owners[1])], true)
	_ = s.Touch("visits", time.Hour)
	for range 3 {
		count("with a copy's node out of use")
	}
	first := s.ringIndex(owners[0])
	procs[first] = procs[first].Restart(t)
	_ = s.Touch("visits", time.Hour) // finds the old connections dead
	probed.waitUp(t, owners[0])
	count("the other node restarted empty")
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
