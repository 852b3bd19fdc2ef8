//go:build !noembeddeddb

package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// startSmallMemcached runs a memcached of its own with megabytes of memory,
// so a test can fill it; stopped when the test ends.
func startSmallMemcached(t *testing.T, megabytes int) string {
	t.Helper()
	if _, err := testkit.MemcachedBin(); err != nil {
		testkit.Unavailable(t, "%v", err)
	}
	ps, err := testkit.NewProcs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.StopAll(time.Second) })
	mc, err := testkit.StartMemcached(context.Background(), ps, "memcached", "", megabytes, "-t", "1")
	if err != nil {
		t.Fatal(err)
	}
	return mc.Addr
}

var visitCountRE = regexp.MustCompile(`You have visited this page (\d+) times?\.`)

// floodBrowser is one browser behind its own client address.
type floodBrowser struct {
	addr string
	jar  testkit.Jar
}

// visit GETs /catalog/ as b (its cookies, its X-Forwarded-For), keeps
// the cookies it is given, and returns the visit count shown (0: none).
func (b *floodBrowser) visit(t *testing.T, client *http.Client, base string) int {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/catalog/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", b.addr)
	// Past the cookie check, as a browser is after its first redirects.
	cookies := b.jar.Header("/catalog/", false)
	if cookies == "" {
		cookies = "cookietest=1"
	}
	req.Header.Set("Cookie", cookies)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s: %v", b.addr, err)
		return 0
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: status %d", b.addr, resp.StatusCode)
		return 0
	}
	b.jar.KeepResponse(resp.Header)
	m := visitCountRE.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestFloodFromOneAllocationKeepsReturningBrowsers is a flood of first
// visits from 65,536 /64s of one IPv6 /48, against a memcached small enough that the flood's sessions
// would evict everybody else's: 1,000 browsers that visited before keep
// their sessions, and new browsers elsewhere still get sessions.
func TestFloodFromOneAllocationKeepsReturningBrowsers(t *testing.T) {
	const (
		perMinute, burst = 120, 100
		returning        = 1000
	)
	s := startService(t, map[string]string{
		"LOCALLIBRARY_MEMCACHED_SERVERS":       startSmallMemcached(t, 2),
		"LOCALLIBRARY_MEMCACHED_TIMEOUT":       "2s", // a busy machine, not a slow memcached
		"LOCALLIBRARY_TRUSTED_PROXIES":         "127.0.0.1/32",
		"LOCALLIBRARY_NEW_SESSIONS_PER_MINUTE": strconv.Itoa(perMinute),
		"LOCALLIBRARY_NEW_SESSIONS_BURST":      strconv.Itoa(burst),
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)

	// Returning browsers, each behind an IPv4 address of its own /24.
	browsers := make([]*floodBrowser, returning)
	testkit.Each(context.Background(), returning, 8, func(i int) {
		b := &floodBrowser{addr: fmt.Sprintf("10.%d.%d.1", i>>8, i&0xff)}
		if n := b.visit(t, client, s.url); n != 1 {
			t.Errorf("browser %s, first visit: count %d, want 1", b.addr, n)
		}
		browsers[i] = b
	})
	if t.Failed() {
		t.FailNow()
	}

	// The flood: a first visit from every /64 of 2001:db8:66::/48.
	start := time.Now()
	var stored atomic.Int64
	testkit.Each(context.Background(), 1<<16, 8, func(i int) {
		b := &floodBrowser{addr: fmt.Sprintf("2001:db8:66:%x::1", i)}
		b.visit(t, client, s.url)
		if len(b.jar.Header("/catalog/", false)) > 0 {
			stored.Add(1)
		}
	})
	elapsed := time.Since(start)
	budget := 4*burst + int(elapsed.Minutes()*4*perMinute) + 1
	t.Logf("flood: 65,536 first visits in %s, %d given a session (the /48's budget: %d)", elapsed.Round(time.Millisecond), stored.Load(), budget)
	if int(stored.Load()) > budget {
		t.Errorf("the flooding /48 was given %d sessions, over its budget of %d", stored.Load(), budget)
	}

	// Every returning browser still has its session: its count goes on.
	var mu sync.Mutex
	lost := 0
	testkit.Each(context.Background(), returning, 8, func(i int) {
		if n := browsers[i].visit(t, client, s.url); n != 2 {
			mu.Lock()
			lost++
			mu.Unlock()
		}
	})
	if lost > 0 {
		t.Errorf("%d of %d returning browsers lost their session to the flood", lost, returning)
	}

	// Browsers elsewhere still get new sessions: another /48, IPv4.
	for _, addr := range []string{"2001:db8:77:1::1", "2001:db8:77:2::1", "198.51.100.9", "203.0.113.5"} {
		b := &floodBrowser{addr: addr}
		first, second := b.visit(t, client, s.url), b.visit(t, client, s.url)
		if first != 1 || second != 2 {
			t.Errorf("new browser at %s: counts %d then %d, want 1 then 2", addr, first, second)
		}
	}
}
