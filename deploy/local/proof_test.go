package local

// The one-machine scale-out proof (see doc.go). It needs nginx and
// memcached installed, and LOCALLIBRARY_TEST_MYSQL_DSN naming
// a MariaDB on this machine whose user may create and drop databases named
// ll_test_% (it creates ll_test_proof_<random> and drops it at the end).
// Without them it skips, unless LOCALLIBRARY_TEST_REQUIRE_SERVICES=1.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The proof's shape.
const (
	replicas       = 3
	memcachedNodes = 3
	// sessionReplicas is LOCALLIBRARY_SESSION_REPLICAS. 1 (each session and
	// its count on one memcached) is what makes the resize measure the
	// hashing: with 2, a read that misses on a moved key falls back to the
	// other copy, and every session would survive whatever the placement.
	// No memcached is stopped here, which is what 2 is for.
	sessionReplicas = 1
	// memcachedTimeout is LOCALLIBRARY_MEMCACHED_TIMEOUT. The default,
	// 100ms, assumes memcached next to the replica with CPU to spare. Here
	// the browsers, nginx, four replicas, four memcached and MariaDB share 2
	// cores, and a scheduling stall of 100ms happens: the read times out,
	// the store skips that memcached for 250ms, and its visitors' counts go
	// missing meanwhile. That is the machine, not the rollout under test.
	memcachedTimeout = time.Second
	// dbMaxOpenConns is LOCALLIBRARY_DB_MAX_OPEN_CONNS: up to four replicas
	// run at once, and with the default 32 each they could take most of a
	// MariaDB's 151 connections (its default max_connections), which other
	// tests on the machine use too. Eight is plenty for these page views.
	dbMaxOpenConns = 8

	authors, books, copiesPerBook = 50, 200, 2
	listPages                     = books / 10 // the list's default page size

	loadBrowsers = 120
	// thinkMin, thinkMax bound a browser's pause between pages: 120
	// browsers make some 600 requests a second, continuous load that leaves
	// this 2-core machine room to start replicas and reload nginx.
	thinkMin, thinkMax = 100 * time.Millisecond, 300 * time.Millisecond

	// resizeSample is how many browsers' sessions are followed through the
	// resize: the load's browsers and more with one visit each. The fraction
	// that stays is random (session ids are); with 1000 its standard
	// deviation is about 0.014, so the thresholds below do not flake.
	resizeSample = 1000

	drain           = 2 * time.Second // LOCALLIBRARY_SHUTDOWN_DRAIN
	shutdownTimeout = 5 * time.Second // LOCALLIBRARY_SHUTDOWN_TIMEOUT
	// lbLag is how long after SIGTERM the load balancer learns that a
	// replica is going, as in Kubernetes, where the kubelet signals the pod
	// and the endpoints reach the ingress controller a moment later. It
	// must stay under drain: the replica serves pages until then.
	lbLag = time.Second

	warmUp   = 2 * time.Second  // load before the rollout starts
	cooldown = time.Second      // load after it ends
	maxLoad  = 60 * time.Second // the load stops by then whatever happens

	// minReadable is the least fraction of sessions that must stay readable
	// through the 3 → 4 resize: rendezvous hashing moves the keys the new
	// server wins, a quarter, so 0.75 is expected.
	minReadable = 0.70
	// minContinued is the least fraction of browsers whose count must go on
	// through the resize. The visit counter ("v:"+id) is placed by the
	// session id, so it moves with its session: the same 0.75 is expected.
	minContinued = 0.70
)

func TestProofScaleOut(t *testing.T) {
	neverCached(t)
	if testing.Short() {
		t.Skip("-short: the scale-out proof runs nginx, memcached and replicas for about half a minute; run without -short for it")
	}
	began := time.Now()
	f, servers := setUp(t)
	base, _ := url.Parse(f.lb.url)
	t.Logf("ready after %.1fs: nginx at %s over %s; memcached %s",
		time.Since(began).Seconds(), f.lb.addr, strings.Join(f.addrs(), " "), strings.Join(servers, " "))

	browsers := rolloutUnderLoad(t, f, base, servers)
	resize(t, f, base, servers, browsers)
	say(t, "proof: took %.1fs", time.Since(began).Seconds())
}

// setUp builds the service, makes and seeds its database, and starts the
// memcached servers, the replicas and nginx in front of them.
func setUp(t *testing.T) (*fleet, []string) {
	tl, ps, dir, bin, dsn := setUpCatalog(t)
	var servers []string
	for i := range memcachedNodes {
		servers = append(servers, startMemcached(t, ps, i+1, "").Addr)
	}
	f := &fleet{t: t, ps: ps, bin: bin, dsn: dsn}
	f.start(tl.nginx, dir, servers, replicas)
	for _, path := range []string{"/catalog/book/1", fmt.Sprintf("/catalog/book/%d", books), fmt.Sprintf("/catalog/books/?page=%d", listPages)} {
		if err := expectStatus(f.lb.url+path, http.StatusOK); err != nil {
			t.Fatalf("the seeded catalog through nginx: %v", err)
		}
	}
	return f, servers
}

// setUpCatalog finds the tools, builds the service, and makes and seeds
// a database of its own, dropped when the test ends; it returns the
// processes' keeper, the test's folder, the binary and the database's DSN.
func setUpCatalog(t *testing.T) (tl tools, ps *testkit.Procs, dir, bin, dsn string) {
	tl = findTools(t)
	rawDSN := testkit.Require(t, testkit.EnvMySQLDSN) // the proof creates its database there
	server, err := testkit.OpenMySQL(rawDSN)
	if err != nil {
		testkit.Unavailable(t, "%s: %v", testkit.EnvMySQLDSN, err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}

	dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	guard := testkit.NewGuard()
	t.Cleanup(guard.Close)
	guard.Add(func() { _ = os.RemoveAll(filepath.Dir(dir)) }) // t.TempDir's own folder

	// A database of its own, dropped after every process has stopped
	// (cleanups run last-registered first, and procs is made below).
	if err := server.Exec(ctx, "SELECT 1"); err != nil {
		testkit.Unavailable(t, "MariaDB of %s does not answer: %v", testkit.EnvMySQLDSN, err)
	}
	dbName := "ll_test_proof_" + randomHex(t, 4)
	if err := server.CreateDatabase(ctx, dbName); err != nil {
		t.Fatalf("create the proof's database: %v", err)
	}
	dropDB := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return server.DropDatabase(ctx, dbName)
	}
	guard.Add(func() { _ = dropDB() })
	t.Cleanup(func() {
		if err := dropDB(); err != nil {
			t.Errorf("drop the proof's database: %v", err)
		}
	})
	dsn = server.DSN(dbName)

	// The production build, from the repository root, then the schema and
	// the catalog.
	ps = newProcs(t, dir, guard)
	bin = filepath.Join(dir, "locallibrary")
	steps := []struct {
		name string
		bin  string
		args []string
	}{
		{"build", gobin, []string{"build", "-C", filepath.Join("..", ".."), "-tags", "noembeddeddb", "-o", bin, "."}},
		{"migrate", bin, []string{"migrate"}},
		{"seed", bin, []string{"seed", "--authors", fmt.Sprint(authors), "--books", fmt.Sprint(books), "--copies-per-book", fmt.Sprint(copiesPerBook)}},
	}
	for _, s := range steps {
		if _, err := ps.Run(ctx, s.name, []string{"LOCALLIBRARY_MYSQL_DSN=" + dsn}, s.bin, s.args...); err != nil {
			t.Fatal(err)
		}
	}
	return tl, ps, dir, bin, dsn
}

// rolloutUnderLoad is the first part: browsers keep counting while every
// replica is replaced. It returns the browsers, each having checked its
// count once more after the load.
func rolloutUnderLoad(t *testing.T, f *fleet, base *url.URL, servers []string) []*browser {
	tr := &traffic{}
	ld := startLoad(base, tr, loadBrowsers, books, listPages)
	stopLoad := sync.OnceValue(ld.end)
	watchdog := time.AfterFunc(maxLoad, func() { stopLoad() })
	defer watchdog.Stop()
	time.Sleep(warmUp)
	rolloutErr := f.rollout(servers)
	if rolloutErr == nil {
		time.Sleep(cooldown)
	}
	loadTook := stopLoad()
	if rolloutErr != nil {
		t.Fatalf("rollout under load: %v", rolloutErr)
	}
	if loadTook > maxLoad {
		t.Errorf("the load ran %v: the rollout outlasted its %v bound", loadTook, maxLoad)
	}

	// Each browser comes back once: its count must be one more than the
	// home pages it was shown.
	var mu sync.Mutex
	var differ []string
	testkit.Each(context.Background(), len(ld.browsers), 32, func(i int) {
		b := ld.browsers[i]
		want := uint64(b.homeOK) + 1
		b.home()
		if b.lastCount != want {
			mu.Lock()
			differ = append(differ, fmt.Sprintf("browser %d: count %d after %d home pages", i, b.lastCount, want))
			mu.Unlock()
		}
	})
	for _, r := range f.live {
		f.scrape(r)
	}
	var homePages, outOfOrder, noCount int
	for _, b := range ld.browsers {
		homePages += b.homeOK + b.noCount + b.homeFailure
		outOfOrder += b.outOfOrder
		noCount += b.noCount
	}
	access, err := f.lb.accessLog()
	if err != nil {
		t.Fatal(err)
	}
	var retried, whileDraining int
	for _, e := range access {
		if len(e.upstreams) > 1 {
			retried++
		}
		for _, st := range f.steps {
			if len(e.upstreams) > 0 && e.upstreams[len(e.upstreams)-1] == st.old.addr && e.at.After(st.sigterm) {
				whileDraining++
			}
		}
	}

	say(t, "proof: %d replicas replaced one by one under load from %d browsers for %.1fs (drain %v, nginx told %v after SIGTERM)",
		len(f.steps), loadBrowsers, loadTook.Seconds(), drain, lbLag)
	say(t, "proof: requests made: %d (%d home pages; redirects counted)", tr.requests.Load(), homePages)
	say(t, "proof: failures: %d", tr.failures.Load())
	say(t, "proof: browsers whose count differs from the requests they made: %d", len(differ))
	t.Logf("responses that were another page: %d; home pages whose count was not the previous + 1: %d; home pages without a count: %d",
		tr.wrongPage.Load(), outOfOrder, noCount)
	t.Logf("nginx: %d requests answered by a replica after its SIGTERM (in its drain), %d retried on another replica", whileDraining, retried)
	t.Logf("replicas' /metrics: %.0f session store errors, %.0f home pages without a visit count",
		f.metrics[scrapedMetrics[0]], f.metrics[scrapedMetrics[1]])
	for _, s := range tr.samples {
		t.Logf("problem: %s", s)
	}
	for i, d := range differ {
		if i == 10 {
			t.Logf("… and %d more", len(differ)-10)
			break
		}
		t.Log(d)
	}
	if tr.failures.Load() != 0 || len(differ) != 0 {
		t.Errorf("under the rollout: %d failures and %d browsers whose count differs; want 0 and 0", tr.failures.Load(), len(differ))
	}
	if tr.wrongPage.Load() != 0 || outOfOrder != 0 || noCount != 0 {
		t.Errorf("under the rollout: %d responses that were another page, %d counts out of order, %d home pages without a count; want 0 of each",
			tr.wrongPage.Load(), outOfOrder, noCount)
	}
	if whileDraining == 0 {
		t.Errorf("no request reached a replica after its SIGTERM: the drain window was not exercised")
	}
	return ld.browsers
}

// resize is the second part: memcached 3 → 4, every replica restarted with
// the new list, no load; then each browser comes back once.
func resize(t *testing.T, f *fleet, base *url.URL, servers []string, browsers []*browser) {
	tr := &traffic{}
	shared := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 20 * time.Second}
	defer shared.CloseIdleConnections()
	sample := append([]*browser(nil), browsers...)
	for _, b := range sample {
		b.countInto(tr)
		b.restartsExpected = true
	}
	var extras []*browser
	for range resizeSample - len(sample) {
		b := newBrowser(base, tr, shared)
		b.restartsExpected = true
		extras = append(extras, b)
	}
	testkit.Each(context.Background(), len(extras), 32, func(i int) { extras[i].home() })
	for _, b := range extras {
		if b.homeOK != 1 || b.lastCount != 1 {
			t.Fatalf("a new browser's first visit: %d pages with a count, count %d; problems: %q", b.homeOK, b.lastCount, tr.samples)
		}
	}
	sample = append(sample, extras...)
	type before struct {
		session string
		count   uint64
		homeOK  int
	}
	was := make([]before, len(sample))
	for i, b := range sample {
		was[i] = before{b.sessionID(), b.lastCount, b.homeOK}
		if was[i].session == "" {
			t.Fatalf("browser %d has no session cookie", i)
		}
	}

	servers4 := append(append([]string(nil), servers...), startMemcached(t, f.ps, memcachedNodes+1, "").Addr)
	f.steps = nil
	if err := f.rollout(servers4); err != nil {
		t.Fatalf("rolling restart with 4 memcached servers: %v", err)
	}
	testkit.Each(context.Background(), len(sample), 32, func(i int) { sample[i].home() })

	var continued, countRestarted, newSession int
	var odd []string
	for i, b := range sample {
		w := was[i]
		sameSession := b.sessionID() == w.session
		switch {
		case b.homeOK == w.homeOK+1 && sameSession && b.lastCount == w.count+1:
			continued++
		case b.homeOK == w.homeOK+1 && sameSession && b.lastCount == 1:
			countRestarted++ // the session stayed, its counter moved
		case b.homeOK == w.homeOK+1 && !sameSession && b.lastCount == 1:
			newSession++ // the session moved: a fresh one, as expected
		default:
			odd = append(odd, fmt.Sprintf("browser %d: count %d before, %d after (same session: %t): %s",
				i, w.count, b.lastCount, sameSession, b.history()))
		}
	}
	n := float64(len(sample))
	readable := float64(continued+countRestarted) / n
	say(t, "proof: memcached 3 → 4 (replicas restarted one by one with 4 servers, no load): %d browsers, %d requests, %d failures",
		len(sample), tr.requests.Load(), tr.failures.Load())
	say(t, "proof: sessions still readable: %.3f (%d/%d); counts continued: %.3f (%d/%d); count restarted in the same session: %d; new session: %d",
		readable, continued+countRestarted, len(sample), float64(continued)/n, continued, len(sample), countRestarted, newSession)
	if tr.failures.Load() != 0 || tr.wrongPage.Load() != 0 || len(odd) != 0 {
		for _, s := range tr.samples {
			t.Logf("problem: %s", s)
		}
		for _, s := range odd[:min(len(odd), 10)] {
			t.Log(s)
		}
		t.Errorf("resize: %d failures, %d responses that were another page, %d browsers neither continued nor restarted at 1; want 0 of each",
			tr.failures.Load(), tr.wrongPage.Load(), len(odd))
	}
	if readable < minReadable {
		t.Errorf("resize: %.3f of sessions stayed readable, want at least %.2f", readable, minReadable)
	}
	if c := float64(continued) / n; c < minContinued {
		t.Errorf("resize: %.3f of counts continued, want at least %.2f", c, minContinued)
	}
}

// neverCached keeps `go test` from reusing a passing result: the proof
// tests the service in the parent module, whose files the go command does
// not watch (only files inside deploy/ are), so a cached pass would outlive
// any change to the app. The go command does not cache a result when the
// test read a file of its module modified less than 2 seconds before the
// end; there is no proper way yet (golang/go#23799).
func neverCached(t *testing.T) {
	const stamp = ".last-run" // in this folder; git-ignored
	t.Cleanup(func() {
		if err := os.WriteFile(stamp, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			t.Logf("the result may be cached: %v", err)
			return
		}
		_, _ = os.ReadFile(stamp)
	})
}

// say prints a result line both in the test log and on standard output.
func say(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	fmt.Println(line)
}
