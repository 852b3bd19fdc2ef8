package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
)

// startMemcached starts memcached on host:port; see memcachedtest.Start.
func startMemcached(t *testing.T, host string, port int) *memcachedtest.Server {
	t.Helper()
	return memcachedtest.Start(t, net.JoinHostPort(host, strconv.Itoa(port)))
}

// freePort returns a loopback TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	return mustPort(t, memcachedtest.FreeAddr(t))
}

// mustNewStorage is newStorage that fails the test on error and closes the
// Storage at cleanup.
func mustNewStorage(t *testing.T, cfg Config, h hooks) *Storage {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = testTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = testMaxConns
	}
	s, err := newStorage(cfg, h)
	if err != nil {
		t.Fatalf("newStorage(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawGet reads key, as a Storage without KeyPrefix in generation 0 keeps
// it, straight from one memcached.
func rawGet(t *testing.T, addr, key string) string {
	t.Helper()
	c := memcache.New(addr)
	defer c.Close()
	it, err := c.Get("0:" + key)
	if errors.Is(err, memcache.ErrCacheMiss) {
		return ""
	}
	if err != nil {
		t.Fatalf("raw get %q from %s: %v", key, addr, err)
	}
	return string(it.Value)
}

func TestRendezvousRetention(t *testing.T) {
	names := []string{
		"memcached-0.memcached:11211",
		"memcached-1.memcached:11211",
		"memcached-2.memcached:11211",
		"memcached-3.memcached:11211",
	}
	three, four := newRing(names[:3]), newRing(names)
	const keys = 10_000
	same := 0
	perNode := make(map[string]int)
	for i := range keys {
		k := fmt.Sprintf("ll:%08x-%04x-4%03x", i*7919, i%65536, i%4096)
		var a, b [1]int
		rank(k, three.seeds, a[:])
		rank(k, four.seeds, b[:])
		perNode[names[b[0]]]++
		switch {
		case a[0] == b[0]:
			same++
		case b[0] != 3:
			t.Fatalf("key %q moved from %s to %s, not to the new node", k, names[a[0]], names[b[0]])
		}
	}
	retained := float64(same) / keys
	t.Logf("3→4 nodes: %.4f of %d keys stay on the same node (ideal 0.75)", retained, keys)
	if retained < 0.70 {
		t.Errorf("only %.4f of keys stayed; want ≥ 0.70", retained)
	}
	for _, n := range names {
		if share := float64(perNode[n]) / keys; share < 0.20 || share > 0.30 {
			t.Errorf("%s owns %.3f of keys with 4 nodes; want 0.20–0.30", n, share)
		}
	}
}

func TestRendezvousSelector(t *testing.T) {
	servers := []string{"127.0.0.1:11211", "127.0.0.1:11212", "127.0.0.1:11213"}
	r, err := NewRendezvous(servers...)
	if err != nil {
		t.Fatal(err)
	}
	var mc memcache.ServerSelector = r // usable with memcache.NewFromSelector
	seen := make(map[string]bool)
	for i := range 300 {
		k := "key-" + strconv.Itoa(i)
		a, err := mc.PickServer(k)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := mc.PickServer(k)
		if a.String() != again.String() {
			t.Fatalf("PickServer(%q) not stable: %s then %s", k, a, again)
		}
		seen[a.String()] = true
	}
	if len(seen) != len(servers) {
		t.Errorf("300 keys landed on %d of %d servers", len(seen), len(servers))
	}
	var each []string
	r.Each(func(a net.Addr) error { each = append(each, a.String()); return nil })
	if fmt.Sprint(each) != fmt.Sprint(servers) {
		t.Errorf("Each visited %v, want %v", each, servers)
	}
	if _, err := NewRendezvous("127.0.0.1"); err == nil {
		t.Error("NewRendezvous accepted a server without a port")
	}
}

func TestOwnersAreDistinctAndPrimaryFirst(t *testing.T) {
	s := &Storage{ring: newRing([]string{"a:1", "b:1", "c:1"}), replicas: 2}
	for _, name := range s.ring.names {
		s.nodes = append(s.nodes, &node{name: name})
	}
	for i := range 1000 {
		k := "k" + strconv.Itoa(i)
		owners := s.owners(k)
		var top [1]int
		rank(k, s.ring.seeds, top[:])
		if owners[0] != s.nodes[top[0]] {
			t.Fatalf("owners(%q)[0] = %s, primary is %s", k, owners[0].name, s.nodes[top[0]].name)
		}
		if owners[0] == owners[1] {
			t.Fatalf("owners(%q) = %s twice", k, owners[0].name)
		}
	}
}

func TestIsTransport(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", refused, true},
		{"connect timeout", &memcache.ConnectTimeoutError{Addr: staticAddr("127.0.0.1:1")}, true},
		{"deadline", os.ErrDeadlineExceeded, true},
		{"dropped connection", fmt.Errorf("read: %w", io.EOF), true},
		{"truncated reply", io.ErrUnexpectedEOF, true},
		{"odd reply", errors.New("memcache: unexpected response line from \"set\": \"SERVER_ERROR object too large\""), false},
		{"unresolved", fmt.Errorf("x: %w", memcache.ErrNoServers), true},
		{"skipped while down", fmt.Errorf("x: %w", ErrUnavailable), true},
		{"miss", memcache.ErrCacheMiss, false},
		{"not stored", memcache.ErrNotStored, false},
		{"cas conflict", memcache.ErrCASConflict, false},
		{"client error", errors.New("memcache: client error: cannot increment"), false},
	}
	for _, tt := range tests {
		if got := isTransport(tt.err); got != tt.want {
			t.Errorf("%s: isTransport(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestDeadNodeIsSkippedAndProbed kills a real memcached and checks that
// operations on the dead node fail fast without dialling it (only the
// prober does), and that it is used again once it is back.
func TestDeadNodeIsSkippedAndProbed(t *testing.T) {
	port := freePort(t)
	proc := startMemcached(t, "127.0.0.1", port)
	var dials atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}}, hooks{dial: dial, probed: probed.done})
	if err := s.Set("k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	proc.Kill()

	if _, err := s.Get("k"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get from a dead node = %v; want ErrUnavailable", err)
	}
	<-probed // the prober has dialled once
	before := dials.Load()
	for range 100 {
		if _, err := s.Get("k"); !errors.Is(err, errDown) {
			t.Fatalf("Get from a down node = %v; want it skipped", err)
		}
	}
	<-probed
	if got := dials.Load() - before; got > 2 {
		t.Fatalf("%d dials during 100 operations and one probe; want only the prober's", got)
	}

	startMemcached(t, "127.0.0.1", port) // back, empty
	probed.waitUp(t, s.nodes[0])
	if got, err := s.Get("k"); got != nil || err != nil {
		t.Fatalf("Get after recovery = %q, %v; want nil, nil (restarted empty)", got, err)
	}
	if err := s.Set("k", []byte("v2"), time.Minute); err != nil {
		t.Fatalf("Set after recovery: %v", err)
	}
	if got, err := s.Get("k"); string(got) != "v2" || err != nil {
		t.Fatalf("Get after recovery = %q, %v", got, err)
	}
}

// TestReplicasSurviveNodeDeath runs three nodes with Replicas: 2, kills one
// and checks every session is still readable and every counter continues;
// then brings it back empty and kills another.
func TestReplicasSurviveNodeDeath(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2, KeyPrefix: "ll:"}, hooks{probed: probed.done})

	const sessions, counters, visits = 300, 30, 5
	for i := range sessions {
		if err := s.Set(fmt.Sprintf("sess-%d", i), []byte(fmt.Sprintf("data-%d", i)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	incrementAll := func(t *testing.T, want uint64) {
		t.Helper()
		for j := range counters {
			n, err := s.Increment(fmt.Sprintf("visits-%d", j), time.Hour)
			if err != nil || n != want {
				t.Fatalf("Increment(visits-%d) = %d, %v; want %d", j, n, err, want)
			}
		}
	}
	for v := range visits {
		incrementAll(t, uint64(v+1))
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("Ping with all nodes up: %v", err)
	}

	procs[1].Kill()
	for i := range sessions {
		got, err := s.Get(fmt.Sprintf("sess-%d", i))
		if err != nil || string(got) != fmt.Sprintf("data-%d", i) {
			t.Fatalf("with a node dead, Get(sess-%d) = %q, %v", i, got, err)
		}
	}
	incrementAll(t, visits+1)
	if err := s.Set("new-session", []byte("x"), time.Hour); err != nil {
		t.Fatalf("Set with a node dead: %v", err)
	}
	if got, err := s.Get("new-session"); string(got) != "x" || err != nil {
		t.Fatalf("Get(new-session) with a node dead = %q, %v", got, err)
	}
	if err := s.Ping(); err != nil {
		t.Fatalf("Ping with one of three nodes dead and 2 replicas: %v", err)
	}

	// Node 1 comes back empty; once a probe finds it, it is used again,
	// and its counter copies are rebuilt from the surviving ones.
	startMemcached(t, "127.0.0.1", mustPort(t, addrs[1]))
	probed.waitUp(t, s.nodes[1])
	incrementAll(t, visits+2)

	// Now node 0 dies: counters it shared with node 1 live on only in
	// node 1's rebuilt copies, and must not go backwards.
	procs[0].Kill()
	incrementAll(t, visits+3)

	procs[2].Kill()
	if err := s.Ping(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with two of three nodes dead = %v; want ErrUnavailable", err)
	}
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplicasConcurrentIncrement(t *testing.T) {
	_, addrs := memcachedtest.Cluster(t, 3)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{})
	// The counter exists before the race: two copies created at the same
	// moment by many callers can drift (the creator raises its copy to a
	// count that already includes increments still on their way to it).
	// A browser's counter is created by its first visit, alone.
	if _, err := s.Increment("hits", time.Hour); err != nil {
		t.Fatalf("Increment: %v", err)
	}
	const workers, each = 50, 4
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.Increment("hits", time.Hour); err != nil {
					t.Errorf("Increment: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	// Both copies count every increment once: no loss, no drift.
	for _, n := range s.owners("hits") {
		addr, err := s.ring.addr(s.ringIndex(n))
		if err != nil {
			t.Fatal(err)
		}
		if got := rawGet(t, addr.String(), "hits"); got != strconv.Itoa(1+workers*each) {
			t.Errorf("copy on %s = %q, want %d", n.name, got, 1+workers*each)
		}
	}
}

// ringIndex returns n's position in the ring.
func (s *Storage) ringIndex(n *node) int {
	for i, m := range s.nodes {
		if m == n {
			return i
		}
	}
	panic("node not in ring")
}

func TestReplicasConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"three replicas", Config{Servers: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, Replicas: 3}},
		{"negative", Config{Servers: []string{"127.0.0.1:1"}, Replicas: -1}},
		{"two replicas on one server", Config{Servers: []string{"127.0.0.1:1"}, Replicas: 2}},
		{"duplicate server", Config{Servers: []string{"127.0.0.1:1", "127.0.0.1:1"}, Replicas: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := New(tt.cfg); err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded; want an error", tt.cfg)
			}
		})
	}
}

// fakeDNS is a lookup function whose answers the test changes.
type fakeDNS struct {
	mu    sync.Mutex
	hosts map[string]string // host → IP; missing means "no such host"
}

func (d *fakeDNS) set(host, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ip == "" {
		delete(d.hosts, host)
		return
	}
	d.hosts[host] = ip
}

func (d *fakeDNS) lookup(_ context.Context, host string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ip, ok := d.hosts[host]; ok {
		return []string{ip}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// passes signals each background resolution pass.
type passes chan struct{}

func (p passes) done() {
	select {
	case p <- struct{}{}:
	default:
	}
}

// waitFresh returns once a resolution pass has started after the call:
// the first pass seen may have looked up names before it, the second not.
func (p passes) waitFresh(t *testing.T) {
	t.Helper()
	for {
		select {
		case <-p:
			continue
		default:
		}
		break
	}
	for range 2 {
		select {
		case <-p:
		case <-time.After(5 * time.Second):
			t.Fatal("no resolution pass within 5s")
		}
	}
}

// TestResolveFollowsNewIP simulates a StatefulSet pod restarting with a new
// IP: the name now resolves to another loopback address, where another
// memcached listens on the same port.
func TestResolveFollowsNewIP(t *testing.T) {
	port := freePort(t)
	oldPod := startMemcached(t, "127.0.0.2", port)
	newPod := startMemcached(t, "127.0.0.3", port)
	dns := &fakeDNS{hosts: map[string]string{"memcached-0.memcached": "127.0.0.2"}}
	resolved := make(passes, 1)
	name := net.JoinHostPort("memcached-0.memcached", strconv.Itoa(port))
	s := mustNewStorage(t, Config{Servers: []string{name}, ResolveEvery: time.Millisecond},
		hooks{lookup: dns.lookup, afterResolve: resolved.done})

	if err := s.Set("k", []byte("old"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, oldPod.Addr, "k"); got != "old" {
		t.Fatalf("old pod holds %q, want %q", got, "old")
	}

	unchanged := s.ring.addrs.Load()
	resolved.waitFresh(t)
	if s.ring.addrs.Load() != unchanged {
		t.Fatal("addresses were swapped although nothing changed")
	}

	dns.set("memcached-0.memcached", "127.0.0.3")
	resolved.waitFresh(t)
	if got, err := s.Get("k"); got != nil || err != nil {
		t.Fatalf("Get after the move = %q, %v; want nil, nil from the new, empty pod", got, err)
	}
	if err := s.Set("k", []byte("new"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, newPod.Addr, "k"); got != "new" {
		t.Fatalf("new pod holds %q, want %q", got, "new")
	}

	dns.set("memcached-0.memcached", "") // lookups fail: keep the last address
	resolved.waitFresh(t)
	if got, err := s.Get("k"); string(got) != "new" || err != nil {
		t.Fatalf("Get while DNS fails = %q, %v; want the last known address used", got, err)
	}

	if err := s.Close(); err != nil { // returns only once the loop has stopped
		t.Fatal(err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("resolution loop still running after Close")
	}
}

func TestNewWithUnresolvedNames(t *testing.T) {
	dns := &fakeDNS{hosts: map[string]string{}}
	if s, err := newStorage(Config{Servers: []string{"mc-0.test:11211", "mc-1.test:11211"}}, hooks{lookup: dns.lookup}); err == nil {
		s.Close()
		t.Fatal("New succeeded though no name resolves")
	}

	// One pod not in DNS yet: start anyway, treat it as down, pick it up
	// once it resolves.
	procs, _ := memcachedtest.Cluster(t, 1)
	port := mustPort(t, procs[0].Addr)
	other := startMemcached(t, "127.0.0.2", port)
	dns.set("mc-0.test", "127.0.0.1")
	names := []string{
		net.JoinHostPort("mc-0.test", strconv.Itoa(port)),
		net.JoinHostPort("mc-1.test", strconv.Itoa(port)),
	}
	resolved := make(passes, 1)
	s := mustNewStorage(t, Config{Servers: names, ResolveEvery: time.Millisecond},
		hooks{lookup: dns.lookup, afterResolve: resolved.done})
	if err := s.Ping(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with an unresolved node = %v; want ErrUnavailable", err)
	}
	var onMissing string
	for i := 0; onMissing == ""; i++ {
		if k := "k" + strconv.Itoa(i); s.owners(k)[0].name == names[1] {
			onMissing = k
		}
	}
	if err := s.Set(onMissing, []byte("v"), time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set on the unresolved node = %v; want ErrUnavailable", err)
	}

	dns.set("mc-1.test", "127.0.0.2")
	resolved.waitFresh(t)
	if err := s.Ping(); err != nil {
		t.Fatalf("Ping once the name resolves: %v", err)
	}
	if err := s.Set(onMissing, []byte("v"), time.Minute); err != nil {
		t.Fatalf("Set once the name resolves: %v", err)
	}
	if got := rawGet(t, other.Addr, onMissing); got != "v" {
		t.Fatalf("the late node holds %q, want %q", got, "v")
	}
}

func TestObserve(t *testing.T) {
	proc := startMemcached(t, "127.0.0.1", freePort(t))
	type call struct {
		op  string
		err error
	}
	var mu sync.Mutex
	var calls []call
	observe := func(op string, err error, d time.Duration) {
		if d < 0 {
			t.Errorf("%s: negative duration %v", op, d)
		}
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{op, err})
	}
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, Observe: observe}, hooks{})

	s.Get("missing")
	s.Set("k", []byte("v"), time.Minute)
	s.Get("k")
	s.Touch("k", time.Minute)
	s.Increment("n", time.Minute)
	s.Delete("k")
	s.Ping()
	s.Reset()
	proc.Kill()
	s.Get("k")

	want := []struct {
		op      string
		wantErr error // nil: no error
	}{
		{"get", nil}, {"set", nil}, {"get", nil}, {"touch", nil}, {"increment", nil},
		{"delete", nil}, {"ping", nil}, {"reset", nil}, {"get", ErrUnavailable},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(want) {
		t.Fatalf("observed %d operations %v; want %d", len(calls), calls, len(want))
	}
	for i, w := range want {
		c := calls[i]
		if c.op != w.op || (w.wantErr == nil) != (c.err == nil) || (w.wantErr != nil && !errors.Is(c.err, w.wantErr)) {
			t.Errorf("call %d = %s, %v; want %s, %v", i, c.op, c.err, w.op, w.wantErr)
		}
	}
}

func TestReplicaSurvivesRestartedEmptyPrimary(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{})
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%d", i)
		if err := s.Set(keys[i], []byte("data"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Node 0 restarts on the same address and forgets everything it held.
	procs[0].Kill()
	host, port, _ := net.SplitHostPort(addrs[0])
	n, _ := strconv.Atoi(port)
	startMemcached(t, host, n)
	// A new client, as after an app restart: no stale connections or
	// down state hide the restarted node, which answers every Get with a miss.
	fresh := mustNewStorage(t, Config{Servers: addrs, Replicas: 2, RepairTTL: time.Hour}, hooks{})
	for _, k := range keys {
		v, err := fresh.Get(k)
		if err != nil || string(v) != "data" {
			t.Fatalf("after an empty restart of one node, Get(%s) = %q, %v", k, v, err)
		}
	}
	// Reading put back the copies the restarted node was first for.
	repaired := 0
	for _, k := range keys {
		if rawGet(t, addrs[0], k) == "data" {
			repaired++
		}
	}
	if repaired == 0 {
		t.Error("no lost copy was written back to the restarted node")
	}
}

// TestSkippedCopyCatchesUp freezes the node holding one copy of a counter:
// the count reached while it is skipped is owed to it, and its next
// increment raises it past that, so losing the other copy later does not
// send the count back.
func TestSkippedCopyCatchesUp(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2, Timeout: 300 * time.Millisecond}, hooks{probed: probed.done})
	for range 3 {
		if _, err := s.Increment("visits", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	owners := s.owners("visits")
	frozen := procs[s.ringIndex(owners[1])]
	frozen.Stop(t)
	want := uint64(3)
	for range 5 { // the first waits out the timeout, the rest skip the node
		n, err := s.Increment("visits", time.Hour)
		want++
		if err != nil || n != want {
			t.Fatalf("Increment with a copy's node frozen = %d, %v; want %d", n, err, want)
		}
	}
	frozen.Continue(t)
	probed.waitUp(t, owners[1])
	want++
	if n, err := s.Increment("visits", time.Hour); err != nil || n != want {
		t.Fatalf("Increment once the node answers = %d, %v; want %d", n, err, want)
	}
	procs[s.ringIndex(owners[0])].Kill()
	want++
	if n, err := s.Increment("visits", time.Hour); err != nil || n != want {
		t.Fatalf("Increment on the caught-up copy alone = %d, %v; want %d", n, err, want)
	}
}

// TestRestartedCopyIsNotPaidTwice is two app replicas, each with its own
// Storage, on the same nodes. While the node holding one copy of a counter
// is dead, replica a skips it and owes it the increments it missed; the
// node comes back empty, and replica b, the first to count there, creates
// the copy and raises it to the other one's count, which holds those
// increments already. a's next increment must not add them a second time.
func TestRestartedCopyIsNotPaidTwice(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	probed := make(probes, 1)
	a := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{probed: probed.done})
	b := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{})
	var want uint64
	count := func(s *Storage, when string) {
		t.Helper()
		want++
		if n, err := s.Increment("visits", time.Hour); err != nil || n != want {
			t.Fatalf("Increment %s = %d, %v; want %d", when, n, err, want)
		}
	}
	for range 3 {
		count(a, "before")
	}
	owners := a.owners("visits")
	dead := a.ringIndex(owners[1])
	procs[dead].Kill()
	for range 3 { // the first finds the node dead, the rest skip it
		count(a, "with a copy's node dead")
	}
	procs[dead] = procs[dead].Restart(t)
	probed.waitUp(t, owners[1])
	count(b, "on b, the first on the restarted node")
	count(a, "on a, which owes the restarted node")
	procs[a.ringIndex(owners[0])].Kill()
	count(b, "on the restarted node's copy alone")
}
