package local

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The pool test's shape: more replicas than the proof, each with a small
// pool, and more browsers than all their pools' connections together, so
// that pages wait for connections and a pool that opened more would show.
const (
	poolReplicas = 6
	// poolCap is LOCALLIBRARY_MEMCACHED_MAX_CONNS: connections from one
	// replica to one memcached node, at most. (A node out of use after a
	// failure gets one more, its probe; none fails here.)
	poolCap      = 6
	poolBrowsers = 256
	poolLoadFor  = 8 * time.Second
	// sampleEvery is the sampling's pace. On a busy 2-core machine a
	// sample can take longer, and then the next one follows at once.
	sampleEvery = 200 * time.Millisecond
	minSamples  = 8 // one a second at least, or the cap was hardly watched
	// minNodeShare is the least share of the memcached commands during the
	// load that each node must have served: sessions are placed by their
	// random ids, so each of 3 gets about a third.
	minNodeShare = 0.10
)

// TestAFleetKeepsMemcachedConnectionsWithinThePoolCap runs 6 replicas on 3
// memcached nodes behind nginx, each replica's pool capped at poolCap
// connections per node, and 256 returning browsers loading the home page
// as fast as they are answered, each on keep-alive connections of its own.
// Every 200ms during the load it counts each replica's open connections to
// each node (from /proc and ss): never more than the cap. After it: every page
// was a 200 with the next count, each browser's count is what it had plus
// the home pages it was shown, and every node served a fair share.
func TestAFleetKeepsMemcachedConnectionsWithinThePoolCap(t *testing.T) {
	neverCached(t)
	if testing.Short() {
		t.Skip("-short: runs nginx, 6 replicas and 3 memcached under load for about 15s")
	}
	ssBin, err := testkit.FindBin("ss", "iproute2", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
	if err != nil {
		testkit.Unavailable(t, "%v", err)
	}
	began := time.Now()
	tl, ps, dir, bin, dsn := setUpCatalog(t)
	var servers []string
	for i := range memcachedNodes {
		servers = append(servers, startMemcached(t, ps, i+1, "").Addr)
	}
	f := &fleet{t: t, ps: ps, bin: bin, dsn: dsn, env: []string{
		fmt.Sprintf("LOCALLIBRARY_MEMCACHED_MAX_CONNS=%d", poolCap),
	}}
	f.start(tl.nginx, dir, servers, poolReplicas)
	base, _ := url.Parse(f.lb.url)
	pids := make([]int, len(f.live))
	for i, r := range f.live {
		pids[i] = r.proc.PID()
	}

	// Each browser's session, made through the cookie test, and its
	// first count.
	browsers := returningBrowsers(t, base, &traffic{}, poolBrowsers)
	had := make([]int, len(browsers))
	for i, b := range browsers {
		had[i] = b.homeOK
	}
	statsBefore := nodeStats(t, servers)
	t.Logf("ready after %.1fs: nginx at %s over %d replicas (pool cap %d per node); memcached %s; %d browsers with a session",
		time.Since(began).Seconds(), f.lb.addr, len(f.live), poolCap, strings.Join(servers, " "), len(browsers))

	// The load, and the sampling while it runs.
	loadTr := &traffic{}
	for _, b := range browsers {
		b.countInto(loadTr)
	}
	ld := homeLoad(browsers)
	maxPerNode := make([][]int, len(pids)) // replica → node → most seen
	maxTotal := make([]int, len(pids))
	for i := range maxPerNode {
		maxPerNode[i] = make([]int, len(servers))
	}
	var samples int
	var over []string
	tick := time.NewTicker(sampleEvery)
	for end := ld.started.Add(poolLoadFor); time.Now().Before(end); {
		<-tick.C
		conns, err := connsTo(ssBin, pids, servers)
		if err != nil {
			ld.end()
			t.Fatalf("count the replicas' memcached connections: %v", err)
		}
		samples++
		at := time.Since(ld.started)
		for i, perNode := range conns {
			total := 0
			for j, n := range perNode {
				total += n
				maxPerNode[i][j] = max(maxPerNode[i][j], n)
				if n > poolCap && len(over) < 10 {
					over = append(over, fmt.Sprintf("%.1fs: %s holds %d connections to %s", at.Seconds(), f.live[i].name, n, servers[j]))
				}
			}
			maxTotal[i] = max(maxTotal[i], total)
		}
	}
	tick.Stop()
	loadTook := ld.end()
	statsAfter := nodeStats(t, servers)

	// Each browser comes back once more: the count it was shown last
	// during the load must have been stored.
	var views, differ int
	var odd []string
	testkit.Each(context.Background(), len(browsers), 32, func(i int) { browsers[i].home() })
	for i, b := range browsers {
		shown := b.homeOK - had[i] // during the load, and the one after
		views += shown - 1
		if b.lastCount != uint64(had[i]+shown) || b.homeFailure != 0 || b.noCount != 0 || b.outOfOrder != 0 {
			differ++
			if len(odd) < 10 {
				odd = append(odd, fmt.Sprintf("browser %d: count %d after %d+%d home pages (%d failed, %d without a count, %d out of order): %s",
					i, b.lastCount, had[i], shown, b.homeFailure, b.noCount, b.outOfOrder, b.history()))
			}
		}
	}
	for _, r := range f.live {
		f.scrape(r)
	}

	say(t, "pool cap: %d browsers loaded the home page for %.1fs over %d replicas: %d home pages, %d requests, %.0f a second (this machine, not a benchmark)",
		len(browsers), loadTook.Seconds(), len(f.live), views, loadTr.requests.Load(), float64(views)/loadTook.Seconds())
	say(t, "pool cap: failures: %d, other pages: %d, browsers whose count is not what they had plus their home pages: %d",
		loadTr.failures.Load(), loadTr.wrongPage.Load(), differ)
	for i, r := range f.live {
		say(t, "pool cap: %s: at most %d memcached connections (cap %d per node × %d), per node %v, over %d samples",
			r.name, maxTotal[i], poolCap, len(servers), maxPerNode[i], samples)
	}
	served := make([]int64, len(servers))
	var allServed int64
	for j := range servers {
		served[j] = memcachedCommands(statsAfter[j]) - memcachedCommands(statsBefore[j])
		allServed += served[j]
	}
	say(t, "pool cap: memcached commands during the load, per node: %v", served)
	t.Logf("replicas' /metrics: %.0f session store errors, %.0f home pages without a visit count",
		f.metrics[scrapedMetrics[0]], f.metrics[scrapedMetrics[1]])
	for _, s := range loadTr.samples {
		t.Logf("problem: %s", s)
	}
	for _, s := range odd {
		t.Log(s)
	}

	if len(over) > 0 {
		t.Errorf("a replica held more than %d connections to a memcached node:\n%s", poolCap, strings.Join(over, "\n"))
	}
	if samples < minSamples {
		t.Errorf("%d samples of the connections in %v, want at least %d", samples, poolLoadFor, minSamples)
	}
	// The counting must see the pools at all, or "never above the cap"
	// says nothing.
	for i, perNode := range maxPerNode {
		for j, n := range perNode {
			if n == 0 {
				t.Errorf("%s was never seen connected to %s: the count of connections misses them", f.live[i].name, servers[j])
			}
		}
	}
	if loadTr.failures.Load() != 0 || loadTr.wrongPage.Load() != 0 || differ != 0 {
		t.Errorf("under the load: %d failures, %d other pages, %d browsers whose count is off; want 0 of each",
			loadTr.failures.Load(), loadTr.wrongPage.Load(), differ)
	}
	if views < len(browsers) {
		t.Errorf("%d home pages during the load, fewer than the %d browsers: the load did not load", views, len(browsers))
	}
	for j, n := range served {
		if float64(n) < minNodeShare*float64(allServed) {
			t.Errorf("memcached %s served %d of the %d commands during the load, less than %.0f%%", servers[j], n, allServed, 100*minNodeShare)
		}
	}
}

// nodeStats reads every node's "stats".
func nodeStats(t *testing.T, servers []string) []map[string]string {
	t.Helper()
	out := make([]map[string]string, len(servers))
	for j, s := range servers {
		st, err := testkit.MemcachedStats(s)
		if err != nil {
			t.Fatal(err)
		}
		out[j] = st
	}
	return out
}

// memcachedCommands is how many reads, writes and increments a node has
// served so far.
func memcachedCommands(st map[string]string) int64 {
	return testkit.StatInt(st, "cmd_get") + testkit.StatInt(st, "cmd_set") +
		testkit.StatInt(st, "incr_hits") + testkit.StatInt(st, "incr_misses")
}
