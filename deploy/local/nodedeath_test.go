package local

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The node-death test's shape: the proof's fleet, each session and count
// on two of the three memcached nodes, and more browsers than the proof's,
// each with one request in flight at all times, so that the replicas'
// memcached pools are full when a node dies under them.
const (
	deathCopies = 2 // LOCALLIBRARY_SESSION_REPLICAS
	// deathPoolCap is LOCALLIBRARY_MEMCACHED_MAX_CONNS: with 200 browsers
	// each replica has some 60 pages in flight, so its pool to each node
	// has every connection open and in use, and pages wait for one; a
	// death breaks them all.
	deathPoolCap  = 8
	deathBrowsers = 200
	deathLoadFor  = 9 * time.Second
	deathFaults   = 2 // node 1 restarted empty, node 3 killed for good
	// backWithin bounds the time from node 1's start to its first command
	// from a replica: each finds it back by a probe (every 250ms), given a
	// loaded machine's slack.
	backWithin = 5 * time.Second
	// maxUnavailable bounds the home pages that may say the count is
	// unavailable: one per browser per death. With two copies a page says
	// so only when neither of its nodes answered, and a replica skips a
	// node from its first failure until it answers a probe, so a death
	// can catch at most the page each browser had in flight. (The timeout
	// is the fleet's memcachedTimeout, 1s, long enough that the machine's
	// stalls are not taken for deaths.) More means pages kept waiting on a
	// dead node, or counts left with no copy.
	maxUnavailable = deathFaults * deathBrowsers
)

// TestNoVisitLostWhenMemcachedNodesDieUnderLoad runs 3 replicas behind
// nginx on 3 memcached nodes, each session and count on two of them, and
// 200 returning browsers loading the home page back to back for 9s. A
// third into the load memcached node 1 is killed (SIGKILL: the replicas'
// connections to it break with no goodbye) and started again, empty, on
// its port; two thirds in, node 3 is killed for good. Every page must be a
// 200; every count shown, the browser's previous one + 1 (a lost, doubled
// or other browser's count fails); pages saying the count is unavailable,
// at most maxUnavailable; and after the load each browser, on the session
// it had, must be shown one more than the counts it was shown. (So a page
// that said the count is unavailable must not have counted the visit
// either: with two copies that takes both nodes' answers timing out after
// the increment landed, which a 1s timeout makes rare.)
func TestNoVisitLostWhenMemcachedNodesDieUnderLoad(t *testing.T) {
	neverCached(t)
	if testing.Short() {
		t.Skip("-short: runs nginx, 3 replicas and 3 memcached under load for about 15s")
	}
	began := time.Now()
	tl, ps, dir, bin, dsn := setUpCatalog(t)
	nodes := make([]*testkit.Memcached, memcachedNodes)
	var servers []string
	for i := range nodes {
		nodes[i] = startMemcached(t, ps, i+1, "")
		servers = append(servers, nodes[i].Addr)
	}
	idle := nodeStats(t, servers) // connections a node has with no replica on it
	f := &fleet{t: t, ps: ps, bin: bin, dsn: dsn, env: []string{
		fmt.Sprintf("LOCALLIBRARY_SESSION_REPLICAS=%d", deathCopies),
		fmt.Sprintf("LOCALLIBRARY_MEMCACHED_MAX_CONNS=%d", deathPoolCap),
	}}
	f.start(tl.nginx, dir, servers, replicas)
	base, _ := url.Parse(f.lb.url)
	browsers := returningBrowsers(t, base, &traffic{}, deathBrowsers)
	sessions := make([]string, len(browsers))
	for i, b := range browsers {
		sessions[i] = b.sessionID()
	}
	t.Logf("ready after %.1fs: nginx at %s over %d replicas (%d copies of each session, pool cap %d per node); memcached %s; %d browsers with a session",
		time.Since(began).Seconds(), f.lb.addr, len(f.live), deathCopies, deathPoolCap, strings.Join(servers, " "), len(browsers))

	tr := &traffic{}
	for _, b := range browsers {
		b.countInto(tr)
	}
	ld := homeLoad(browsers)
	endLoad := sync.OnceValue(ld.end)
	t.Cleanup(func() { endLoad() }) // also after a t.Fatal, before the processes stop

	time.Sleep(time.Until(ld.started.Add(deathLoadFor / 3)))
	held1 := killMemcached(t, nodes[0], idle[0])
	killed1 := time.Now()
	nodes[0] = startMemcached(t, ps, 1, servers[0])
	down1 := time.Since(killed1)
	if err := testkit.WaitFor(context.Background(), nodes[0].Proc, backWithin, "a replica's command on the restarted node 1", func() error {
		st, err := testkit.MemcachedStats(servers[0])
		if err == nil && memcachedCommands(st) == 0 {
			err = fmt.Errorf("no command yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	used1 := time.Since(killed1)
	time.Sleep(time.Until(ld.started.Add(2 * deathLoadFor / 3)))
	held3 := killMemcached(t, nodes[2], idle[2])
	killed3 := time.Now()
	time.Sleep(time.Until(ld.started.Add(deathLoadFor)))
	loadTook := endLoad()
	loadEnded := time.Now()

	// The home pages of the load, and when those without a count came.
	var pages int
	var unavailable []time.Time
	before := make([]int, len(browsers)) // pages shown a count, the first visit's included
	for i, b := range browsers {
		pages += b.homeOK - 1 + b.noCount + b.homeFailure
		unavailable = append(unavailable, b.unavailableAt...)
		before[i] = b.homeOK
	}
	type window struct {
		what     string
		from, to time.Time
		n        int
		last     time.Time // the last page without a count
	}
	windows := []window{
		{what: "before the faults", from: ld.started, to: killed1},
		{what: fmt.Sprintf("node 1 killed (%d connections from the replicas), back, empty, %.0fms later, and used again after %.0fms",
			held1, float64(down1.Microseconds())/1000, float64(used1.Microseconds())/1000), from: killed1, to: killed3},
		{what: fmt.Sprintf("node 3 killed for good (%d connections from the replicas)", held3), from: killed3, to: loadEnded},
	}
	for _, at := range unavailable {
		for i := range windows {
			if w := &windows[i]; !at.Before(w.from) && at.Before(w.to) {
				w.n++
				if at.After(w.last) {
					w.last = at
				}
			}
		}
	}
	restarted := nodeStats(t, servers[:1])[0]

	// Each browser comes back once more: its count must be one more than
	// the counts it was shown, on the session it had.
	testkit.Each(context.Background(), len(browsers), 32, func(i int) { browsers[i].home() })
	var odd []string
	for i, b := range browsers {
		problem := ""
		switch {
		case b.homeOK != before[i]+1:
			problem = "the last visit showed no count"
		case b.sessionID() != sessions[i]:
			problem = "a new session"
		case b.lastCount != uint64(b.homeOK):
			problem = fmt.Sprintf("count %d after %d pages shown a count", b.lastCount, b.homeOK)
		case b.outOfOrder != 0 || b.homeFailure != 0 || b.noCount != len(b.unavailableAt):
			problem = fmt.Sprintf("%d counts not the previous + 1, %d pages failed, %d neither counted nor unavailable",
				b.outOfOrder, b.homeFailure, b.noCount-len(b.unavailableAt))
		default:
			continue
		}
		odd = append(odd, fmt.Sprintf("browser %d: %s: %s", i, problem, b.history()))
	}
	for _, r := range f.live {
		f.scrape(r)
	}

	say(t, "node death: %d browsers loaded the home page for %.1fs over %d replicas, %d copies of each count: %d home pages, %d requests",
		len(browsers), loadTook.Seconds(), len(f.live), deathCopies, pages, tr.requests.Load())
	for _, w := range windows {
		resumed := "no page went without a count"
		if w.n > 0 {
			resumed = fmt.Sprintf("the last page without a count %.0fms in", float64(w.last.Sub(w.from).Microseconds())/1000)
		}
		say(t, "node death: %s: %d pages said the count is unavailable; %s", w.what, w.n, resumed)
	}
	say(t, "node death: %d of %d pages said the count is unavailable (%.2f%%, at most %d); failures: %d, other pages: %d, browsers whose count is off: %d",
		len(unavailable), pages, 100*float64(len(unavailable))/float64(max(pages, 1)), maxUnavailable, tr.failures.Load(), tr.wrongPage.Load(), len(odd))
	t.Logf("restarted node 1 after the load: %d commands served, %d items; replicas' /metrics: %.0f session store errors, %.0f home pages without a visit count",
		memcachedCommands(restarted), testkit.StatInt(restarted, "curr_items"), f.metrics[scrapedMetrics[0]], f.metrics[scrapedMetrics[1]])
	say(t, "node death: took %.1fs", time.Since(began).Seconds())
	for _, s := range tr.samples {
		t.Logf("problem: %s", s)
	}
	for _, s := range odd[:min(len(odd), 10)] {
		t.Log(s)
	}

	if tr.failures.Load() != 0 || tr.wrongPage.Load() != 0 || len(odd) != 0 {
		t.Errorf("with nodes dying: %d failures, %d other pages, %d browsers whose count is off; want 0 of each",
			tr.failures.Load(), tr.wrongPage.Load(), len(odd))
	}
	if len(unavailable) > maxUnavailable {
		t.Errorf("%d pages said the count is unavailable, more than %d (one per browser per fault)", len(unavailable), maxUnavailable)
	}
	// The deaths must hit full pools, or the counts above say nothing
	// about them.
	if full := int64(len(f.live) * deathPoolCap); held1 < full || held3 < full {
		t.Errorf("the nodes killed held %d and %d connections from the replicas, want %d each (%d replicas' full pools)", held1, held3, full, len(f.live))
	}
	if pages < 3*len(browsers) {
		t.Errorf("%d home pages during the load, under 3 per browser: the load did not load", pages)
	}
}

// killMemcached SIGKILLs m and waits until it has exited: the replicas'
// connections to it break with no goodbye, as when its machine is lost.
// It returns the connections m held just before, less idle's (those it has
// with no client but the reader of its stats).
func killMemcached(t *testing.T, m *testkit.Memcached, idle map[string]string) int64 {
	t.Helper()
	st, err := testkit.MemcachedStats(m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", m.Proc.Name, err)
	}
	<-m.Proc.Done()
	return testkit.StatInt(st, "curr_connections") - testkit.StatInt(idle, "curr_connections")
}
