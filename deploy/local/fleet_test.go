package local

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// fleet is the web replicas: those in the load balancer, and how to
// replace them.
type fleet struct {
	t        *testing.T
	ps       *testkit.Procs
	bin, dsn string
	lb       *balancer
	live     []*replica // in the upstream, oldest first
	made     int
	steps    []step
	metrics  map[string]float64 // session-store figures of the replicas scraped
	env      []string           // settings of the test's own, after the fleet's (the last one wins)
}

// scrapedMetrics are the replica's figures that tell of trouble with
// sessions, summed over the replicas by scrape.
var scrapedMetrics = []string{
	"locallibrary_session_store_errors_total",
	"locallibrary_visit_count_unavailable_total",
}

// start starts n replicas on the memcached servers and nginx (the binary
// nginx, its files under dir) in front of them.
func (f *fleet) start(nginx, dir string, servers []string, n int) {
	f.t.Helper()
	for range n {
		r, _, err := f.startReplica(servers)
		if err != nil {
			f.t.Fatal(err)
		}
		f.live = append(f.live, r)
	}
	var err error
	if f.lb, err = startNginx(f.ps, nginx, filepath.Join(dir, "nginx"), testkit.MustFreeAddr(f.t), f.addrs()); err != nil {
		f.t.Fatal(err)
	}
}

// scrape adds r's session-store figures from /metrics to f.metrics.
func (f *fleet) scrape(r *replica) {
	m, err := testkit.Scrape(context.Background(), nil, "http://"+r.metricsAddr+"/metrics")
	if err != nil {
		f.t.Logf("scrape %s: %v", r.name, err)
		return
	}
	if f.metrics == nil {
		f.metrics = make(map[string]float64)
	}
	for _, name := range scrapedMetrics {
		f.metrics[name] += m.Sum(name, nil) // every label's series
	}
}

type replica struct {
	name, addr  string
	metricsAddr string // its /metrics listener, apart from the site
	proc        *testkit.Proc
}

// step is one replacement, timed from the old replica's SIGTERM.
type step struct {
	old, new  *replica
	readyIn   time.Duration // the new one: start to /readyz 200
	sigterm   time.Time
	notReady  time.Duration // the old one's /readyz says 503
	lbLearned time.Duration // nginx no longer sends it anything
	exitedIn  time.Duration // it exited 0
}

func (f *fleet) addrs() []string {
	var a []string
	for _, r := range f.live {
		a = append(a, r.addr)
	}
	return a
}

// startReplica starts a replica and waits until /readyz says 200
// (testkit.StartService, which tries other ports if one was taken).
func (f *fleet) startReplica(servers []string) (*replica, time.Duration, error) {
	f.made++
	name := fmt.Sprintf("replica-%d", f.made)
	began := time.Now()
	svc, err := testkit.StartService(context.Background(), f.ps, name, f.bin, append([]string{
		"LOCALLIBRARY_MYSQL_DSN=" + f.dsn,
		"LOCALLIBRARY_MEMCACHED_SERVERS=" + strings.Join(servers, ","),
		"LOCALLIBRARY_SECRET_KEY=fleet-secret-key-0123456789abcdef0123456789", // the same on every replica
		fmt.Sprintf("LOCALLIBRARY_SESSION_REPLICAS=%d", sessionReplicas),
		"LOCALLIBRARY_SHUTDOWN_DRAIN=" + drain.String(),
		"LOCALLIBRARY_SHUTDOWN_TIMEOUT=" + shutdownTimeout.String(),
		"LOCALLIBRARY_TRUSTED_PROXIES=127.0.0.1/32",
		"LOCALLIBRARY_PROXY_HEADER=X-Forwarded-For",
		// Every test browser comes from 127.0.0.1: an "office" far
		// larger than the per-address limit on new sessions assumes.
		"LOCALLIBRARY_NEW_SESSIONS_BURST=100000",
		"LOCALLIBRARY_MEMCACHED_TIMEOUT=" + memcachedTimeout.String(),
		fmt.Sprintf("LOCALLIBRARY_DB_MAX_OPEN_CONNS=%d", dbMaxOpenConns),
		"LOCALLIBRARY_LOG_LEVEL=info",
	}, f.env...))
	if err != nil {
		return nil, 0, err
	}
	return &replica{name: name, addr: svc.Addr, metricsAddr: svc.MetricsAddr, proc: svc.Proc}, time.Since(began), nil
}

// rollout replaces every replica in turn, oldest first, as a Kubernetes
// Deployment with maxSurge 1 and maxUnavailable 0 does.
func (f *fleet) rollout(servers []string) error {
	for range len(f.live) {
		s, err := f.replace(f.live[0], servers)
		if err != nil {
			return err
		}
		f.steps = append(f.steps, s)
		f.t.Logf("%s ready in %.2fs and in nginx; %s: SIGTERM, /readyz 503 after %.0fms, out of nginx after %.2fs, exited 0 after %.2fs",
			s.new.name, s.readyIn.Seconds(), s.old.name, float64(s.notReady.Microseconds())/1000, s.lbLearned.Seconds(), s.exitedIn.Seconds())
	}
	return nil
}

// replace starts a new replica, adds it to nginx once ready, then stops
// old: SIGTERM first, its removal from nginx lbLag later, while it still
// serves, and then it must exit with status 0.
func (f *fleet) replace(old *replica, servers []string) (step, error) {
	s := step{old: old}
	var err error
	if s.new, s.readyIn, err = f.startReplica(servers); err != nil {
		return s, err
	}
	f.live = append(f.live, s.new)
	if err := f.lb.setUpstream(f.addrs()); err != nil {
		return s, fmt.Errorf("add %s to nginx: %w", s.new.name, err)
	}

	s.sigterm = time.Now()
	if err := old.proc.Signal(syscall.SIGTERM); err != nil {
		return s, fmt.Errorf("SIGTERM %s: %w", old.name, err)
	}
	if err := testkit.WaitFor(context.Background(), old.proc, lbLag, old.name+" /readyz 503 after SIGTERM", func() error {
		return expectStatus("http://"+old.addr+"/readyz", http.StatusServiceUnavailable)
	}); err != nil {
		return s, err
	}
	s.notReady = time.Since(s.sigterm)
	time.Sleep(time.Until(s.sigterm.Add(lbLag)))
	f.live = f.live[1:]
	if err := f.lb.setUpstream(f.addrs()); err != nil {
		return s, fmt.Errorf("remove %s from nginx: %w", old.name, err)
	}
	s.lbLearned = time.Since(s.sigterm)
	f.scrape(old) // it still answers: its drain is not over
	if s.lbLearned >= drain {
		return s, fmt.Errorf("nginx let go of %s %.2fs after SIGTERM, after its %v drain: requests may have met a closed port", old.name, s.lbLearned.Seconds(), drain)
	}
	if err := old.proc.Wait(drain + shutdownTimeout + 5*time.Second); err != nil {
		return s, fmt.Errorf("%s after SIGTERM: %v, want exit status 0; log:\n%s", old.name, err, testkit.Tail(old.proc.Log, 10))
	}
	s.exitedIn = time.Since(s.sigterm)
	return s, nil
}

// startMemcached starts memcached number i on addr, "" for a free loopback
// port (a node started again, empty, takes the port it had).
func startMemcached(t *testing.T, ps *testkit.Procs, i int, addr string) *testkit.Memcached {
	t.Helper()
	mc, err := testkit.StartMemcached(context.Background(), ps, fmt.Sprintf("memcached-%d", i), addr, 64, "-c", "1024", "-t", "1")
	if err != nil {
		t.Fatal(err)
	}
	return mc
}
