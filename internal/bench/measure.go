package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// target is a row of the table on one build: what wrk sends where, and
// what is read around each run.
type target struct {
	spec  targetSpec
	name  string // the row's, with the build's label
	addr  string // wrk's host:port
	conns int
	lines []reqLine
	pids  []int              // processes whose CPU is counted
	svcs  []*testkit.Service // those of them whose /metrics are read (none for the ceiling)
	nodes []*mcNode
	set   *browserSet // home pages: the browsers whose visits are checked
}

// result is one measured run of a target.
type result struct {
	Target string        `json:"target"`
	Round  int           `json:"round"`
	Wrk    wrkResult     `json:"wrk"`
	RPS    float64       `json:"rps"`
	Ratio  float64       `json:"ratio_to_ceiling"` // 0 without a ceiling in the round
	CPU    time.Duration `json:"cpu_ns"`           // of the target's processes
	Allocs float64       `json:"allocs"`           // heap objects they allocated; -1: not known
	McCPU  time.Duration `json:"memcached_cpu_ns"` // rusage in memcached's stats
	// Lost is the visits made but not counted (negative: counted beyond
	// them); nil when not checked.
	Lost *int64 `json:"lost_visits,omitempty"`
}

// firstVisitLines are a first visit's four requests, each with the
// cookies a browser would send at that hop, none kept from the answers.
var firstVisitLines = []reqLine{
	{method: "GET", path: "/"},
	{method: "GET", path: "/catalog/"},
	{method: "GET", path: "/catalog/?cookies=check", cookie: "cookietest=1"},
	{method: "GET", path: "/catalog/", cookie: "cookietest=1"},
}

// spread pairs every path with the browsers in turn (no browser: no
// cookie).
func spread(paths, cookies []string) []reqLine {
	if len(cookies) == 0 {
		cookies = []string{""}
	}
	lines := make([]reqLine, max(len(paths), len(cookies)))
	for i := range lines {
		lines[i] = reqLine{method: "GET", path: paths[i%len(paths)], cookie: cookies[i%len(cookies)]}
	}
	return lines
}

// makeTargets makes each asked row's target, on each build in turn.
func (b *bench) makeTargets(ctx context.Context) error {
	for _, name := range b.o.targets {
		s, _ := specOf(name)
		if !s.onService() {
			b.targets = append(b.targets, b.newTarget(s, nil))
			continue
		}
		for _, bd := range b.builds {
			b.targets = append(b.targets, b.newTarget(s, bd))
		}
	}
	return ctx.Err()
}

// homeCookies are the Cookie headers of the home page's returning
// browsers, which the ceilings get too, so their requests weigh the same.
func (b *bench) homeCookies() []string {
	if g := b.builds[0].single; g != nil {
		return g.dismissed.cookies
	}
	return nil
}

func (b *bench) newTarget(s targetSpec, bd *build) *target {
	t := &target{spec: s, name: s.name, conns: s.conns}
	if t.conns == 0 {
		t.conns = b.o.conns
	}
	switch s.kind {
	case ceilingKind:
		t.addr, t.pids = b.ceilAddr, []int{b.ceiling.PID()}
		t.lines = spread([]string{"/"}, b.homeCookies())
		return t
	case ceilingFleetKind:
		t.addr = b.ceilFleetAddr
		for _, p := range b.ceilFleet {
			t.pids = append(t.pids, p.PID())
		}
		t.lines = spread([]string{"/"}, b.homeCookies())
		return t
	case fiberKind:
		f := b.fiber
		t.addr, t.pids, t.svcs, t.nodes, t.set = f.Addr, []int{f.PID()}, []*testkit.Service{f.Service}, b.nodes, f.group.dismissed
		t.lines = spread([]string{"/catalog/"}, t.set.cookies)
		return t
	case fleetKind:
		t.name += bd.label
		t.addr, t.nodes, t.set, t.svcs = bd.lbAddr, b.fleetNodes, bd.fleetGroup.dismissed, bd.fleet
		for _, r := range bd.fleet {
			t.pids = append(t.pids, r.PID())
		}
		t.lines = spread([]string{"/catalog/"}, t.set.cookies)
		return t
	}
	t.name += bd.label
	svc := bd.svcs[s.serviceKey()]
	t.addr, t.pids, t.svcs, t.nodes = svc.Addr, []int{svc.PID()}, []*testkit.Service{svc}, b.nodes
	g := bd.single
	switch s.kind {
	case homeKind:
		t.set = g.dismissed
		if s.notice {
			t.set = g.notice
		}
		t.lines = spread([]string{"/catalog/"}, t.set.cookies)
	case firstVisitKind:
		t.lines = firstVisitLines
	case formKind:
		// Ids whose session is not stored: every POST makes the calls a
		// click does (Got it: a read and the write of a session; Forget
		// me: two deletes), however often wrk sends it.
		for _, f := range g.forms {
			t.lines = append(t.lines, reqLine{method: "POST", path: s.action, cookie: f.cookie, body: f.body})
		}
	case pageKind:
		t.lines = spread(s.paths(catalogs.Sizes[s.catalog]), g.dismissed.cookies)
	}
	return t
}

// measure warms every target up, runs the rounds, then the concurrent-tabs
// check of the session layers.
func (b *bench) measure(ctx context.Context) error {
	if b.o.warmup > 0 {
		for _, t := range b.targets {
			b.logf("warming up %s for %v", t.name, b.o.warmup)
			if _, err := b.runWrk(ctx, t.name+"-warmup", t.addr, t.lines, t.conns, b.o.warmup); err != nil {
				return err
			}
			if t.set != nil {
				t.set.known = false // the warm-up's visits are not counted
			}
		}
	}
	for round := 1; round <= b.o.rounds; round++ {
		var ceiling float64
		start := len(b.runs)
		for _, t := range b.targets {
			time.Sleep(300 * time.Millisecond) // the last run's connections close
			r, err := b.runOnce(ctx, t, round)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			if t.spec.kind == ceilingKind {
				ceiling = r.RPS
			}
			b.runs = append(b.runs, r)
			b.logf("round %d/%d %-22s %8.0f req/s  p50 %5.2f ms  p99 %6.2f ms  errors %d%s", round, b.o.rounds, t.name,
				r.RPS, float64(r.Wrk.P50US)/1000, float64(r.Wrk.P99US)/1000, r.Wrk.errors(), lostText(r.Lost, " lost visits "))
		}
		for i := start; ceiling > 0 && i < len(b.runs); i++ {
			b.runs[i].Ratio = b.runs[i].RPS / ceiling
		}
		b.growth.settle()
	}
	return b.checkTabs(ctx)
}

func (b *bench) wrkDir() string { return b.out + "/wrk" }

// runOnce runs wrk once on t, with the figures read around it.
func (b *bench) runOnce(ctx context.Context, t *target, round int) (result, error) {
	r := result{Target: t.name, Round: round}
	base := "http://" + t.addr
	check := t.set != nil
	if check && !t.set.known {
		if err := t.set.readSum(ctx, base); err != nil {
			b.note("%s, round %d: visits not checked, a count could not be read: %v", t.name, round, err)
			check = false
		}
	}
	before, err := b.sample(ctx, t)
	if err != nil {
		return r, err
	}
	if r.Wrk, err = b.runWrk(ctx, fmt.Sprintf("%s-round%d", t.name, round), t.addr, t.lines, t.conns, b.o.duration); err != nil {
		return r, err
	}
	if check {
		b.settle(ctx, t, before.counted)
	}
	after, err := b.sample(ctx, t)
	if err != nil {
		return r, err
	}
	r.RPS = r.Wrk.rps()
	r.CPU, r.McCPU, r.Allocs = after.cpu-before.cpu, after.mcCPU-before.mcCPU, -1
	if len(t.svcs) > 0 {
		r.Allocs = after.allocs - before.allocs
	}
	if check {
		prev := t.set.sum
		if err := t.set.readSum(ctx, base); err != nil {
			b.note("%s, round %d: visits not checked, a count could not be read: %v", t.name, round, err)
		} else {
			// The reads count a visit each, after the pages counted were read.
			lost := prev + int64(after.counted-before.counted) + int64(len(t.set.cookies)) - t.set.sum
			r.Lost = &lost
		}
	}
	return r, nil
}

// sample is what is read before and after a run.
type sample struct {
	cpu     time.Duration
	allocs  float64 // go_memstats_mallocs_total
	counted float64 // home pages that showed a count
	mcCPU   time.Duration
}

func (b *bench) sample(ctx context.Context, t *target) (sample, error) {
	var s sample
	for _, pid := range t.pids {
		cpu, err := testkit.CPUTime(pid)
		if err != nil {
			return s, err
		}
		s.cpu += cpu
	}
	for _, svc := range t.svcs {
		m, err := testkit.Scrape(ctx, nil, "http://"+svc.MetricsAddr+"/metrics")
		if err != nil {
			return s, err
		}
		s.allocs += m.Sum("go_memstats_mallocs_total", nil)
		s.counted += countedPages(m)
		b.growth.read(svc.Name, m)
	}
	for _, n := range t.nodes {
		cpu, err := n.cpu()
		if err != nil {
			return s, err
		}
		s.mcCPU += cpu
	}
	return s, nil
}

// countedPages is the home pages that showed a count: the site's 200
// answers to GET /catalog/ less those that said the count was
// unavailable, and fibersession's counted pages (its metric, named in
// fibersession/main.go).
func countedPages(m testkit.Metrics) float64 {
	pages := m.Sum("locallibrary_http_request_duration_seconds_count", func(l map[string]string) bool {
		return l["route"] == "/catalog/" && l["method"] == "GET" && l["status"] == "200"
	})
	return pages - m.Sum("locallibrary_visit_count_unavailable_total", nil) +
		m.Sum("fibersession_home_pages_total", func(l map[string]string) bool { return l["visit"] == "counted" })
}

// settle waits, up to 5s, for the requests still in flight when wrk
// stopped: the services finish them, and their visits are counted.
func (b *bench) settle(ctx context.Context, t *target, last float64) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(200 * time.Millisecond)
		s, err := b.sample(ctx, t)
		if err != nil || s.counted == last {
			return
		}
		last = s.counted
	}
}

// tabsBrowsers and tabsAtOnce size the concurrent-tabs check.
const (
	tabsBrowsers = 50
	tabsAtOnce   = 8
)

// checkTabs runs the concurrent-tabs check on each build's own session
// layer and on Fiber's, with browsers of their own.
func (b *bench) checkTabs(ctx context.Context) error {
	if !b.wants(homeKind) && !b.wants(fiberKind) {
		return nil
	}
	type layer struct{ name, base string }
	var layers []layer
	for _, bd := range b.builds {
		if s := bd.anyService(); s != nil {
			layers = append(layers, layer{"the site's session layer" + bd.label, "http://" + s.Addr})
		}
	}
	if b.fiber != nil {
		layers = append(layers, layer{"Fiber's session middleware", b.fiber.base()})
	}
	for _, l := range layers {
		newBrowser := siteBrowser
		if b.fiber != nil && l.base == b.fiber.base() {
			newBrowser = fiberBrowser
		}
		set, err := newSet(ctx, tabsBrowsers, l.base, true, newBrowser)
		if err != nil {
			return err
		}
		r, err := tabsCheck(ctx, l.name, l.base, set, tabsAtOnce)
		if err != nil {
			return err
		}
		b.tabs = append(b.tabs, r)
		b.logf("%d tabs at once, %s: %d visits, %d counted", tabsAtOnce, l.name, r.Expected, r.Stored)
	}
	return nil
}

// mcNode is a memcached node the services use.
type mcNode struct{ addr, version string }

// openNode checks a node answers.
func openNode(addr string) (*mcNode, error) {
	st, err := testkit.MemcachedStats(addr)
	if err != nil {
		return nil, fmt.Errorf("memcached %s: %w", addr, err)
	}
	return &mcNode{addr: addr, version: st["version"]}, nil
}

// cpu is the node's CPU time so far, from its stats.
func (n *mcNode) cpu() (time.Duration, error) {
	st, err := testkit.MemcachedStats(n.addr)
	if err != nil {
		return 0, err
	}
	user, _ := strconv.ParseFloat(st["rusage_user"], 64)
	sys, _ := strconv.ParseFloat(st["rusage_system"], 64)
	return time.Duration((user + sys) * float64(time.Second)), nil
}

func addrsOf(nodes []*mcNode) string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return strings.Join(addrs, ",")
}
