package memcachestore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
)

// writeCounter dials real connections and counts the writes made on them.
type writeCounter struct{ writes, dials atomic.Int64 }

func (w *writeCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w.dials.Add(1)
	return countingConn{nc, w}, nil
}

type countingConn struct {
	net.Conn
	w *writeCounter
}

func (c countingConn) Write(p []byte) (int, error) {
	c.w.writes.Add(1)
	return c.Conn.Write(p)
}

// queued is how many reads wait on n for an exchange.
func queued(n *node) int {
	n.batch.mu.Lock()
	defer n.batch.mu.Unlock()
	return len(n.batch.queue)
}

// TestConcurrentPagesShareWrites: one page alone costs exactly one write;
// 64 pages in flight at once, while memcached holds the first exchange
// (stopped), cost two: the first page's and one for the other 63, and
// every page gets its own answer, in order, counted once.
func TestConcurrentPagesShareWrites(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	var wc writeCounter
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}}, hooks{dial: wc.dial})
	const pages = 64
	for i := range pages {
		id := fmt.Sprintf("page%02d", i)
		if err := s.Set(id, []byte(id), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Increment("v:"+id, time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	before := wc.writes.Load()
	if val, count, counted, err := s.GetAndIncrement("page00", "v:page00"); err != nil || string(val) != "page00" || count != 2 || !counted {
		t.Fatalf("alone: %q, %d, %v, %v", val, count, counted, err)
	}
	if got := wc.writes.Load() - before; got != 1 {
		t.Fatalf("one page alone cost %d writes, want 1", got)
	}

	getsBefore := proc.Stat(t, "cmd_get")
	proc.Stop(t)
	before = wc.writes.Load()
	var wg sync.WaitGroup
	page := func(i int) {
		wg.Go(func() {
			id := fmt.Sprintf("page%02d", i)
			want := uint64(2)
			if i == 0 {
				want = 3
			}
			val, count, counted, err := s.GetAndIncrement(id, "v:"+id)
			if err != nil || string(val) != id || count != want || !counted {
				t.Errorf("%s: %q, %d, %v, %v; want its own value and %d", id, val, count, counted, err, want)
			}
		})
	}
	n := s.nodes[0]
	waitFor := func(what string, done func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 5s for %s", what)
			}
		}
	}
	page(0) // its exchange is written, memcached does not answer it yet
	waitFor("the first page's write", func() bool { return wc.writes.Load()-before == 1 })
	for i := 1; i < pages; i++ {
		page(i)
	}
	waitFor("the other pages to queue", func() bool { return queued(n) == pages-1 })
	proc.Continue(t)
	wg.Wait()
	if got := wc.writes.Load() - before; got != 2 {
		t.Errorf("%d concurrent pages cost %d writes, want 2 (the first, then the other %d together)", pages, got, pages-1)
	}
	if got := proc.Stat(t, "cmd_get") - getsBefore; got != pages {
		t.Errorf("memcached served %d gets, want %d", got, pages)
	}
	if free := n.pool.idle(); free != n.pool.size() {
		t.Errorf("%d of %d connections back in the pool", free, n.pool.size())
	}
}

// BenchmarkGetAndIncrementParallel is 64 pages at a time on their own
// memcached, reporting memcached's read/write system calls and CPU per
// page beside the client's writes.
func BenchmarkGetAndIncrementParallel(b *testing.B) {
	proc := memcachedtest.Start(b, "")
	var wc writeCounter
	s, err := newStorage(Config{Servers: []string{proc.Addr}, Timeout: testTimeout, MaxConns: 256}, hooks{dial: wc.dial})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const ids = 1000
	for i := range ids {
		id := fmt.Sprintf("sess%04d", i)
		if err := s.Set(id, make([]byte, 60), time.Hour); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Increment("v:"+id, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	sys0, cpu0 := proc.Usage(b)
	w0 := wc.writes.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("sess%04d", next.Add(1)%ids)
			if _, _, counted, err := s.GetAndIncrement(id, "v:"+id); err != nil || !counted {
				b.Errorf("%s: %v, %v", id, counted, err)
				return
			}
		}
	})
	b.StopTimer()
	sys1, cpu1 := proc.Usage(b)
	b.ReportMetric(float64(sys1-sys0)/float64(b.N), "mc-syscalls/op")
	b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "mc-cpu-ns/op")
	b.ReportMetric(float64(wc.writes.Load()-w0)/float64(b.N), "writes/op")
}

// TestHungNodeCostsQueuedPagesOneTimeout: pages queued behind an exchange
// that a hung memcached never answers fail together when it times out,
// each within one timeout of its start plus a margin, and the node is out
// until it answers again.
func TestHungNodeCostsQueuedPagesOneTimeout(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	probed := make(probes, 1)
	const timeout = 300 * time.Millisecond
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, Timeout: timeout}, hooks{probed: probed.done})
	if err := s.Set("sess", []byte("data"), time.Minute); err != nil {
		t.Fatal(err)
	}
	proc.Stop(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			start := time.Now()
			_, _, _, err := s.GetAndIncrement("sess", "v:sess")
			if took := time.Since(start); !errors.Is(err, ErrUnavailable) || took > timeout+timeout/2 {
				t.Errorf("on a hung node: %v after %v; want ErrUnavailable within one timeout (%v)", err, took, timeout)
			}
		})
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	n := s.nodes[0]
	if !n.down.Load() {
		t.Fatal("the hung node is still in use")
	}
	if free := n.pool.idle(); free != n.pool.size() {
		t.Errorf("%d of %d connections back in the pool", free, n.pool.size())
	}
	proc.Continue(t)
	probed.waitUp(t, n)
	if val, _, _, err := s.GetAndIncrement("sess", "v:sess"); err != nil || string(val) != "data" {
		t.Fatalf("after the node answers again: %q, %v", val, err)
	}
}

// TestConnectionsFollowTheLoadNotTheCap: a node's pool opens a connection
// only when every open one is busy. Pages one after another use one
// connection however large the cap; a few at a time, about as many as are
// in flight. Lending slots in turn opened every one of them.
func TestConnectionsFollowTheLoadNotTheCap(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	var wc writeCounter
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, MaxConns: 64}, hooks{dial: wc.dial})
	n := s.nodes[0]
	for i := range 500 {
		id := fmt.Sprintf("one-at-a-time%d", i%10)
		if err := s.Set(id, []byte(id), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := s.GetAndIncrement(id, "v:"+id); err != nil {
			t.Fatal(err)
		}
	}
	if got := wc.dials.Load(); got != 1 {
		t.Errorf("1,000 operations one after another dialled %d connections, want 1", got)
	}
	const inFlight = 4
	var wg sync.WaitGroup
	for g := range inFlight {
		wg.Go(func() {
			for i := range 500 {
				id := fmt.Sprintf("few-at-a-time%d-%d", g, i%10)
				if err := s.Set(id, []byte(id), time.Minute); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := n.pool.open(); got > inFlight {
		t.Errorf("%d operations in flight at a time left %d connections open, want at most %d", inFlight, got, inFlight)
	}
	if free := n.pool.idle(); free != n.pool.size() {
		t.Errorf("%d of %d connections back in the pool", free, n.pool.size())
	}
}

// TestAnIdleConnectionToARestartedNodeIsNotLent: memcached restarted while
// the pool's connection to it sat idle. The next operation must get a new
// connection and succeed, not fail on the dead one and take the node out.
func TestAnIdleConnectionToARestartedNodeIsNotLent(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}}, hooks{})
	if err := s.Set("before", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	proc.Restart(t) // the new one ends with the test
	time.Sleep(2 * staleCheckAfter)
	if err := s.Set("after", []byte("y"), time.Minute); err != nil {
		t.Fatalf("first operation after the restart: %v", err)
	}
	if got, err := s.Get("after"); string(got) != "y" || err != nil {
		t.Fatalf("Get = %q, %v", got, err)
	}
}
