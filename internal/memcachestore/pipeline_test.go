package memcachestore

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/memcachestore/memcachedtest"
)

func TestGetAndIncrement(t *testing.T) {
	s := newTestStorage(t)
	big := bytes.Repeat([]byte("v\r\nEND\r\n"), 2000) // protocol words inside a value
	if err := s.Set("sess", big, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("lonely", []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment("v:sess", time.Minute); err != nil { // the counter at 1
		t.Fatal(err)
	}
	tests := []struct {
		name, get, incr string
		wantVal         []byte
		wantCount       uint64
		wantCounted     bool
	}{
		{"value and counter", "sess", "v:sess", big, 2, true},
		{"again", "sess", "v:sess", big, 3, true},
		{"value without counter", "lonely", "v:lonely", []byte("x"), 0, false},
		{"neither", "nobody", "v:nobody", nil, 0, false},
		{"a key memcached cannot hold", strings.Repeat("k", 300), "v:k", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			val, count, counted, err := s.GetAndIncrement(tt.get, tt.incr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(val, tt.wantVal) || count != tt.wantCount || counted != tt.wantCounted {
				t.Errorf("= %d bytes, %d, %v; want %d bytes, %d, %v", len(val), count, counted, len(tt.wantVal), tt.wantCount, tt.wantCounted)
			}
		})
	}
	if got, _ := s.Get("v:nobody"); got != nil {
		t.Error("a counter was created for a value that does not exist")
	}
}

func TestGetAndIncrementCountsEveryConcurrentCall(t *testing.T) {
	s := newTestStorage(t)
	if err := s.Set("sess", []byte("data"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment("v:sess", time.Minute); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if val, _, counted, err := s.GetAndIncrement("sess", "v:sess"); err != nil || !counted || string(val) != "data" {
				t.Errorf("= %q, %v, %v", val, counted, err)
			}
		})
	}
	wg.Wait()
	if got, _ := s.Get("v:sess"); string(got) != "51" {
		t.Fatalf("counter = %s after 1 + 50 concurrent increments, want 51", got)
	}
}

func TestGetAndIncrementWithTwoCopies(t *testing.T) {
	_, addrs := memcachedtest.Cluster(t, 3)
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2}, hooks{})
	if err := s.Set("sess", []byte("data"), time.Minute); err != nil {
		t.Fatal(err)
	}
	val, count, counted, err := s.GetAndIncrement("sess", "v:sess")
	if err != nil || string(val) != "data" || count != 1 || !counted {
		t.Fatalf("= %q, %d, %v, %v; want data, 1, true", val, count, counted, err)
	}
	if _, _, counted, _ := s.GetAndIncrement("nobody", "v:nobody"); counted {
		t.Error("a counter went up for a value that does not exist")
	}
}

func TestGetAndIncrementOnADeadNode(t *testing.T) {
	node := memcachedtest.Start(t, "")
	s := mustNewStorage(t, Config{Servers: []string{node.Addr}, Timeout: 200 * time.Millisecond}, hooks{})
	if _, _, _, err := s.GetAndIncrement("sess", "v:sess"); err != nil {
		t.Fatal(err)
	}
	node.Kill()
	if _, _, _, err := s.GetAndIncrement("sess", "v:sess"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("on a dead node: %v, want ErrUnavailable", err)
	}
}

// TestGetAndIncrementRepairsASecondCopy restarts, empty, the node holding
// a session's second copy, visits once, then kills the first: the visit
// must have written the session back to the restarted node.
func TestGetAndIncrementRepairsASecondCopy(t *testing.T) {
	procs, addrs := memcachedtest.Cluster(t, 3)
	probed := make(probes, 1)
	place := func(k string) string { return strings.TrimPrefix(k, "v:") } // a session and its counter together
	s := mustNewStorage(t, Config{Servers: addrs, Replicas: 2, RepairTTL: time.Hour, Place: place}, hooks{probed: probed.done})
	if err := s.Set("sess", []byte("data"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Increment("v:sess", time.Hour); err != nil {
		t.Fatal(err)
	}
	owners := s.owners("sess")
	first, second := s.ringIndex(owners[0]), s.ringIndex(owners[1])

	procs[second] = procs[second].Restart(t)
	time.Sleep(2 * staleCheckAfter) // a restart takes longer than that in life; see TestAnIdleConnectionToARestartedNodeIsNotLent
	s.Get("sess")                   // reads the first copy only: the second stays lost
	for {
		val, count, counted, err := s.GetAndIncrement("sess", "v:sess")
		if err == nil {
			if string(val) != "data" || count != 2 || !counted {
				t.Fatalf("visit after the restart = %q, %d, %v", val, count, counted)
			}
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		probed.waitUp(t, owners[1]) // its stale connections failed
	}
	procs[first].Kill()
	if got, err := s.Get("sess"); string(got) != "data" || err != nil {
		t.Fatalf("with the first copy's node dead, Get = %q, %v; want the repaired second copy", got, err)
	}
	if n, err := s.Increment("v:sess", time.Hour); n != 3 || err != nil {
		t.Fatalf("with the first copy's node dead, Increment = %d, %v; want 3", n, err)
	}
}
