package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// The flood's shape. Every MySQL answer is held back mysqlLatency by the
// proxy between the replicas and MariaDB: a database busy with someone
// else's flood, made cheaply, so that floodClients requests keep every
// replica's pool of floodPool connections full (each query ~100ms, 200
// waiting per replica: a connection is a second away for each of them)
// while the machine's two cores stay mostly idle.
const (
	mysqlLatency  = 100 * time.Millisecond
	floodPool     = 16 // LOCALLIBRARY_DB_MAX_OPEN_CONNS, the default
	floodClients  = 600
	floodFor      = 8 * time.Second
	probeEvery    = 200 * time.Millisecond
	readyTimeout  = 2 * time.Second // the Deployment's readinessProbe timeoutSeconds
	pageTimeout   = 5 * time.Second // a known page past its TTL waits up to the query timeout for a refresh
	outageNoticed = 5 * time.Second // MySQL cut: every replica 503 by then
	floodPageTTL  = 3 * time.Second // LOCALLIBRARY_PAGE_CACHE_TTL: pages are stale soon after the cut
)

// knownPages are pages of the seeded catalog; each replica has them in
// its page cache before the flood.
var knownPages = []string{"/catalog/book/1", "/catalog/book/2", "/catalog/author/1", "/catalog/books/"}

// TestReadyThroughAFloodOfUnknownIDs floods the site through nginx with
// book pages of random ids that do not exist, each a query and a 404,
// far more than every replica's pool can answer (page loads take at most
// their share of it, and the rest get 503 busy). /readyz must stay 200 on every
// replica and the known pages be served: the replica can serve, MySQL is
// only busy. Then MySQL is cut off: /readyz must turn 503 within a few
// seconds while the cached pages are still served, marked stale; and
// 200 again once MySQL is back.
func TestReadyThroughAFloodOfUnknownIDs(t *testing.T) {
	neverCached(t)
	if testing.Short() {
		t.Skip("-short: the flood runs nginx and three replicas for about half a minute")
	}
	tl, ps, dir, bin, dsn := setUpCatalog(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startSlowProxy(t, cfg.Addr, mysqlLatency)
	cfg.Addr = proxy.addr
	f := &fleet{t: t, ps: ps, bin: bin, dsn: cfg.FormatDSN(), env: []string{
		fmt.Sprintf("LOCALLIBRARY_DB_MAX_OPEN_CONNS=%d", floodPool),
		"LOCALLIBRARY_PAGE_CACHE_TTL=" + floodPageTTL.String(),
	}}
	servers := []string{startMemcached(t, ps, 1, "").Addr}
	f.start(tl.nginx, dir, servers, replicas)
	for _, r := range f.live {
		for _, page := range knownPages {
			if err := expectStatus("http://"+r.addr+page, http.StatusOK); err != nil {
				t.Fatalf("warming %s: %v", r.name, err)
			}
		}
	}
	waitsBefore, busyBefore := poolPressure(t, f)

	// The flood, and the probes beside it.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: floodClients}}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	ctx, stop := context.WithTimeout(context.Background(), floodFor)
	defer stop()
	var floodStatus sync.Map // status → *atomic.Int64
	var wg sync.WaitGroup
	for range floodClients {
		wg.Go(func() {
			for ctx.Err() == nil {
				status := fetchStatus(ctx, client, fmt.Sprintf("%s/catalog/book/%d", f.lb.url, 1_000_000+rand.Int64N(1_000_000_000)))
				if ctx.Err() != nil {
					return // cut off by the flood's end
				}
				n, _ := floodStatus.LoadOrStore(status, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})
	}
	var probes probeLog
	probes.watch(ctx, &wg, f)
	wg.Wait()

	var flood []string
	floodStatus.Range(func(k, v any) bool {
		flood = append(flood, fmt.Sprintf("%v: %d", k, v.(*atomic.Int64).Load()))
		return true
	})
	waits, busy := poolPressure(t, f)
	waits, busy = waits-waitsBefore, busy-busyBefore
	say(t, "flood: %d clients for %v through nginx, answers %s; the replicas' pools made %.0f queries wait for a connection, "+
		"and %.0f page loads found the pool's share for them taken", floodClients, floodFor, strings.Join(flood, ", "), waits, busy)
	say(t, "flood: /readyz probes %d, not 200: %d; known pages fetched %d, not 200: %d",
		probes.ready.Load(), probes.readyFailed.Load(), probes.pages.Load(), probes.pagesFailed.Load())
	probes.report(t)
	if waits+busy < floodClients {
		t.Errorf("only %.0f queries waited for a pool connection and %.0f page loads for their share: the flood asked no more than the pools answer, so it proves nothing", waits, busy)
	}
	if probes.readyFailed.Load() > 0 || probes.pagesFailed.Load() > 0 {
		t.Errorf("under the flood: %d /readyz probes and %d known pages not 200; want 0 and 0", probes.readyFailed.Load(), probes.pagesFailed.Load())
	}

	// The outage: every replica unready within outageNoticed, the pages
	// it holds still served.
	proxy.cut()
	cutAt := time.Now()
	for _, r := range f.live {
		if err := testkit.WaitFor(context.Background(), r.proc, outageNoticed-time.Since(cutAt), r.name+" /readyz 503 with MySQL cut off", func() error {
			return expectStatus("http://"+r.addr+"/readyz", http.StatusServiceUnavailable)
		}); err != nil {
			t.Fatal(err)
		}
	}
	say(t, "outage: every replica's /readyz 503 %.1fs after MySQL was cut off", time.Since(cutAt).Seconds())
	time.Sleep(time.Until(cutAt.Add(floodPageTTL)))
	for _, r := range f.live {
		body, status := fetchBody(t, "http://"+r.addr+knownPages[0])
		if status != http.StatusOK || !strings.Contains(body, "may be out of date") {
			t.Errorf("%s %s during the outage: %d, want 200 marked stale", r.name, knownPages[0], status)
		}
	}

	proxy.restore(t)
	for _, r := range f.live {
		if err := testkit.WaitFor(context.Background(), r.proc, 10*time.Second, r.name+" /readyz 200 with MySQL back", func() error {
			return expectStatus("http://"+r.addr+"/readyz", http.StatusOK)
		}); err != nil {
			t.Error(err)
		}
	}
}

// probeLog is what the probes beside the flood saw.
type probeLog struct {
	ready, readyFailed, pages, pagesFailed atomic.Int64
	mu                                     sync.Mutex
	samples                                []string
}

// watch probes every replica's /readyz, and the known pages through
// nginx, every probeEvery until ctx ends.
func (p *probeLog) watch(ctx context.Context, wg *sync.WaitGroup, f *fleet) {
	probe := func(url string, timeout time.Duration, n, failed *atomic.Int64) {
		client := &http.Client{Timeout: timeout}
		wg.Go(func() {
			for tick := time.Tick(probeEvery); ctx.Err() == nil; <-tick {
				start := time.Now()
				status := fetchStatus(context.Background(), client, url)
				n.Add(1)
				if status != http.StatusOK && ctx.Err() == nil {
					failed.Add(1)
					p.note(fmt.Sprintf("%s: %v after %.2fs", url, status, time.Since(start).Seconds()))
				}
			}
		})
	}
	for _, r := range f.live {
		probe("http://"+r.addr+"/readyz", readyTimeout, &p.ready, &p.readyFailed)
	}
	for _, page := range knownPages {
		probe(f.lb.url+page, pageTimeout, &p.pages, &p.pagesFailed)
	}
}

func (p *probeLog) note(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) < 10 {
		p.samples = append(p.samples, s)
	}
}

func (p *probeLog) report(t *testing.T) {
	for _, s := range p.samples {
		t.Logf("probe: %s", s)
	}
}

// fetchStatus GETs url and returns its status, or the error's kind.
func fetchStatus(ctx context.Context, client *http.Client, url string) any {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := client.Do(req)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "timeout"
	case err != nil:
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func fetchBody(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

// poolPressure sums, over the replicas, the queries that had to wait for
// a connection of the pool (database/sql's wait count) and the page loads
// refused because their share of the pool stayed taken.
func poolPressure(t *testing.T, f *fleet) (waits, busy float64) {
	t.Helper()
	for _, r := range f.live {
		m, err := testkit.Scrape(context.Background(), nil, "http://"+r.metricsAddr+"/metrics")
		if err != nil {
			t.Fatalf("scrape %s: %v", r.name, err)
		}
		waits += m.Sum("go_sql_wait_count_total", nil)
		busy += m.Sum("locallibrary_page_cache_total", func(l map[string]string) bool { return l["result"] == "busy" })
	}
	return waits, busy
}

// slowProxy stands between the replicas and MariaDB: it holds back every
// chunk MySQL sends by a delay, and can be cut off (its port refuses, its
// connections drop) and restored on the same port.
type slowProxy struct {
	target, addr string
	delay        time.Duration
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func startSlowProxy(t *testing.T, target string, delay time.Duration) *slowProxy {
	t.Helper()
	p := &slowProxy{target: target, delay: delay, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.restore(t)
	t.Cleanup(p.cut)
	return p
}

// restore listens again, on the port of the first listen.
func (p *slowProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

// cut closes the port and every connection through it.
func (p *slowProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *slowProxy) accept(ln net.Listener) {
	for {
		client, err := ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // cut meanwhile
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(server, client)
			server.Close()
		}()
		go func() {
			p.delayed(client, server)
			client.Close()
		}()
	}
}

// delayed copies what MySQL sends to the client, each chunk delay late.
func (p *slowProxy) delayed(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			time.Sleep(p.delay)
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
