package memcachestore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
)

// probes counts the probes of down nodes, for tests to wait on.
type probes chan struct{}

func (p probes) done() {
	select {
	case p <- struct{}{}:
	default:
	}
}

// waitUp waits until n answers a probe.
func (p probes) waitUp(t *testing.T, n *node) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for n.down.Load() {
		select {
		case <-p:
		case <-deadline:
			t.Fatalf("%s still down 10s after it came back", n.name)
		}
	}
}

// burst runs workers goroutines doing GetAndIncrement at once, so that
// each takes a connection of its own, and fails the test on any error.
func burst(t *testing.T, s *Storage, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("burst-%d", i)
			if err := s.Set(id, []byte("x"), time.Minute); err != nil {
				t.Errorf("burst Set: %v", err)
			}
			if _, _, _, err := s.GetAndIncrement(id, "v:"+id); err != nil {
				t.Errorf("burst GetAndIncrement: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
}

// TestRestartIsFoundOutAtOnce fills the pool with connections, restarts
// memcached under the same Storage and checks that counting resumes on
// the first fresh connection: one operation meets a dead connection, and
// every other dead one is retired with it instead of failing a request of
// its own.
func TestRestartIsFoundOutAtOnce(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	probed := make(probes, 1)
	const maxConns = 32
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, MaxConns: maxConns, Timeout: time.Second}, hooks{probed: probed.done})
	baseline := proc.Stat(t, "curr_connections") - 1 // minus Stat's own
	burst(t, s, 4*maxConns)
	open := proc.Stat(t, "curr_connections") - 1 - baseline
	if open < maxConns/2 || open > maxConns {
		t.Fatalf("after the burst %d connections are open; want the pool filled, at most %d", open, maxConns)
	}
	if err := s.Set("sess", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}

	proc = proc.Restart(t)
	back := time.Now()
	if err := s.Set("sess", []byte("x"), time.Minute); !errors.Is(err, ErrUnavailable) && err != nil {
		t.Fatalf("first Set after the restart = %v; want success or ErrUnavailable", err)
	}
	// From now on no operation may meet a dead connection: the node is
	// either skipped (errDown, no traffic) until the prober finds it back,
	// or served on a fresh connection.
	stale := 0
	for {
		_, count, counted, err := s.GetAndIncrement("sess", "v:sess")
		if err == nil && !counted {
			if err := s.Set("sess", []byte("x"), time.Minute); err != nil {
				t.Fatalf("Set on the restarted node: %v", err)
			}
			if _, err := s.Increment("v:sess", time.Minute); err != nil {
				t.Fatalf("Increment on the restarted node: %v", err)
			}
			continue
		}
		if err == nil {
			t.Logf("counting resumed %v after memcached's return (count %d); %d stale-connection failures", time.Since(back), count, stale)
			break
		}
		if !errors.Is(err, errDown) {
			stale++
		}
		if stale > 0 {
			t.Fatalf("an operation after the first failure met a dead connection: %v", err)
		}
		if time.Since(back) > 2*time.Second {
			t.Fatalf("counting not resumed 2s after memcached's return: %v", err)
		}
		probed.waitUp(t, s.nodes[0])
	}
	burst(t, s, 4*maxConns)
	if open := proc.Stat(t, "curr_connections") - 1 - baseline; open > maxConns {
		t.Fatalf("after the restart %d connections are open; the cap is %d", open, maxConns)
	}
}

// TestHungNodeCostsOneTimeout freezes memcached (SIGSTOP: sockets open,
// nothing answers). The first operation waits out its timeout; the next
// ones skip the node without touching the network until a probe finds it
// answering again after SIGCONT.
func TestHungNodeCostsOneTimeout(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	probed := make(probes, 1)
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, Timeout: 200 * time.Millisecond}, hooks{probed: probed.done})
	if err := s.Set("sess", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}

	proc.Stop(t)
	t.Cleanup(func() { proc.Continue(t) })
	_, _, _, err := s.GetAndIncrement("sess", "v:sess")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, errDown) || !isTimeout(err) {
		t.Fatalf("first operation on a hung node = %v; want its timeout", err)
	}
	// The rest of the page and later pages: skipped, never another timeout.
	for range 20 {
		if _, err := s.Get("sess"); !errors.Is(err, errDown) {
			t.Fatalf("operation on a hung node after a timeout = %v; want it skipped", err)
		}
		if err := s.Set("other", []byte("y"), time.Minute); !errors.Is(err, errDown) {
			t.Fatalf("operation on a hung node after a timeout = %v; want it skipped", err)
		}
	}
	// The prober keeps asking; while frozen the node stays out.
	<-probed
	<-probed
	if !s.nodes[0].down.Load() {
		t.Fatal("node back although it never answered")
	}

	proc.Continue(t)
	probed.waitUp(t, s.nodes[0])
	if got, err := s.Get("sess"); string(got) != "x" || err != nil {
		t.Fatalf("Get after the node answers again = %q, %v", got, err)
	}
}

// TestConnectionCap runs many more concurrent operations than the cap
// allows connections: memcached never sees more than the cap, nothing
// fails, and a wait for a connection ends after the timeout without
// marking the node down.
func TestConnectionCap(t *testing.T) {
	proc := memcachedtest.Start(t, "")
	const maxConns = 4
	s := mustNewStorage(t, Config{Servers: []string{proc.Addr}, MaxConns: maxConns, Timeout: 2 * time.Second}, hooks{})
	baseline := proc.Stat(t, "total_connections")
	burst(t, s, 200)
	// total_connections counts every accept, Stat's own included.
	if dialled := proc.Stat(t, "total_connections") - baseline - 1; dialled > maxConns {
		t.Fatalf("%d connections dialled for 400 operations; the cap is %d", dialled, maxConns)
	}

	// Every connection held: the next operation waits one timeout, then
	// gives up with ErrUnavailable, and the node stays in service.
	n := s.nodes[0]
	n.pool.timeout = 50 * time.Millisecond
	var held []*slot
	for range maxConns {
		sl, err := n.pool.get()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, sl)
	}
	if _, err := s.Get("k"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, errPoolBusy) {
		t.Fatalf("Get with every connection busy = %v; want busy, ErrUnavailable", err)
	}
	for _, sl := range held {
		n.pool.put(sl, nil)
	}
	if n.down.Load() {
		t.Fatal("a busy pool marked the node down")
	}
	if _, err := s.Get("k"); err != nil {
		t.Fatalf("Get once connections are free: %v", err)
	}
}
