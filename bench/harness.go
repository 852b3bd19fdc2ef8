package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// targetTitles names the targets -targets accepts.
var targetTitles = map[string]string{
	"a":     "ceiling: 13-byte Fiber handler",
	"b":     "home page, 3,000 copies",
	"c":     "home page, 1,000,000 copies",
	"d":     "book list, ?page=N varying",
	"f":     "book list, ?page=N varying, the other catalog",
	"e":     "home page, 1,000,000 copies, high connections",
	"ag":    "ceiling, Go load generator",
	"bg":    "home page, 3,000 copies, Go load generator",
	"fleet": "MariaDB CPU, home page traffic on 1 vs 6 replicas",
}

// service is one running LocalLibrary process.
type service struct {
	name string
	db   string
	env  []string // the settings it was started with beyond the harness's own
	addr string
	proc *proc

	metricsAddr string // its /metrics listener, apart from the site
}

func (s *service) base() string { return "http://" + s.addr }

func (s *service) metricsBase() string { return "http://" + s.metricsAddr }

// target is one thing measured in every round.
type target struct {
	key, title string
	gen        string   // "wrk" or "go"
	svc        *service // nil for the ceiling
	addr       string
	route      string // the route label in the service's metrics
	kind       string // "ceiling", "home" or "list"
	conns      int
	lines      []reqLine
	ceiling    string // the target whose same-round throughput it is divided by
	baseline   string // for variants: the target they are compared with
}

// runResult is one measured run of a target.
type runResult struct {
	Target        string             `json:"target"`
	Round         int                `json:"round"`
	Load          loadResult         `json:"load"`
	ServerReqs    float64            `json:"server_requests"`
	Non2xx        float64            `json:"server_non2xx"`
	SessionOps    map[string]float64 `json:"session_ops"`
	MemcachedCmds int64              `json:"memcached_commands"`
	Queries       int64              `json:"sql_queries"`
	OtherCommands int64              `json:"sql_other_commands"` // connection setup, pings
	Abandoned     int                `json:"abandoned_queries"`  // still running in MariaDB after the run
	Killed        int                `json:"killed_queries"`     // of which killed after waiting`
	CountsCache   map[string]float64 `json:"counts_cache"`
	PeakRSS       int64              `json:"peak_rss_bytes"`
	ServiceCPU    time.Duration      `json:"service_cpu_ns"`
	MemcachedCPU  time.Duration      `json:"memcached_cpu_ns"`
	MariaDBCPU    time.Duration      `json:"mariadb_cpu_ns"`
	OtherCPU      float64            `json:"other_cpu_share"` // of the machine, by processes not in the benchmark
	Ratio         float64            `json:"ratio_to_ceiling"`
}

// lostVisits is the outcome of the lost-visit check on one home page.
type lostVisits struct {
	Target      string   `json:"target"`
	Browsers    int      `json:"browsers"`
	Requests    int64    `json:"requests"` // 2xx answers during the load
	Lost        int64    `json:"lost"`     // visits made but not counted
	Extra       int64    `json:"extra"`    // counted beyond the visits made (beyond uncertain ones)
	Uncertain   int64    `json:"uncertain"`
	Unavailable int64    `json:"unavailable"`  // 2xx pages that said the count was unavailable
	Excluded    int      `json:"excluded"`     // browsers whose first read failed
	FetchErrors int      `json:"fetch_errors"` // browsers whose last read kept failing
	LoadErrors  int64    `json:"load_errors"`
	FirstError  string   `json:"first_error,omitempty"`
	Examples    []string `json:"examples,omitempty"` // browsers whose count is off
}

type harness struct {
	o    options
	root string
	log  io.Writer

	procs      *procs
	mdb        *mariadb
	mc         *memcached
	mariadbPID int
	serviceBin string
	ceilingBin string

	started       time.Time
	machine       machineInfo
	seeds         map[string]seedRecord
	ceiling       *proc
	ceilAddr      string
	services      map[string]*service
	targets       []*target
	sizes         map[string]sessionSize // "dismissed", "not dismissed"
	runs          []runResult
	lost          []lostVisits
	profile       []string // the profile's top lines
	notes         []string
	countsTTL     time.Duration
	listPages     int
	fleet         []fleetRun
	fleetBrowsers []browser // returning browsers of the 1,000,000-copy catalog
	genCompare    bool
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "bench: "+format+"\n", args...)
}

// note adds a remark to the report, once.
func (h *harness) note(text string) {
	for _, n := range h.notes {
		if n == text {
			return
		}
	}
	h.logf("%s", text)
	h.notes = append(h.notes, text)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func (h *harness) cleanup() {
	if h.procs != nil {
		h.procs.stopAll()
	}
	if h.mdb != nil {
		h.mdb.close()
	}
}

func (h *harness) wants(keys ...string) bool {
	for _, t := range h.o.targets {
		for _, k := range keys {
			if t == k {
				return true
			}
		}
	}
	return false
}

// setUp builds, starts memcached, prepares the catalogs, starts the
// services and creates the browsers.
func (h *harness) setUp(ctx context.Context) error {
	h.started = time.Now()
	h.machine = readMachine(ctx, h.root)
	h.seeds = map[string]seedRecord{}
	h.services = map[string]*service{}
	h.sizes = map[string]sessionSize{}
	h.countsTTL = time.Second
	for _, e := range h.o.env {
		if v, ok := strings.CutPrefix(e, "LOCALLIBRARY_COUNTS_TTL="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				h.countsTTL = d
			}
		}
	}
	usesWrk := false
	for _, t := range h.o.targets {
		if !strings.HasSuffix(t, "g") {
			usesWrk = true
		}
	}
	if usesWrk || len(h.o.variants) > 0 || h.o.profile {
		if _, err := exec.LookPath("wrk"); err != nil {
			return fmt.Errorf("wrk not found (apt-get install -y wrk): %w", err)
		}
	}
	var err error
	if h.procs, err = newProcs(h.o.outDir); err != nil {
		return err
	}
	h.logf("building the service%s and the ceiling program", map[bool]string{true: " at " + h.o.rev, false: ""}[h.o.rev != ""])
	if err := h.build(ctx); err != nil {
		return err
	}
	if h.mdb, err = openMariaDB(ctx, h.o.mysqlDSN); err != nil {
		return err
	}
	h.machine.MariaDB = h.mdb.version
	h.mariadbPID = findProcess("mariadbd")
	if err := h.mdb.setupUserStats(ctx, []string{h.o.smallDB, h.o.largeDB}); err != nil {
		h.notes = append(h.notes, "SQL queries counted server-wide (Questions), so other clients of the server add to them: "+err.Error())
	}
	if h.mc, err = startMemcached(ctx, h.procs, h.o.memcachedBin); err != nil {
		return err
	}
	h.machine.Memcached = h.mc.version
	h.logf("memcached %s on %s", h.mc.version, h.mc.addr)

	needSmall := h.wants("a", "b", "ag", "bg") || h.o.listDB == "small" && h.wants("d") || h.o.listDB == "large" && h.wants("f")
	needLarge := h.wants("c", "e") || h.o.listDB == "large" && h.wants("d") || h.o.listDB == "small" && h.wants("f") ||
		len(h.o.variants) > 0 || h.o.profile || h.wants("fleet")
	for key, p := range pageTargets {
		if h.wants(key) {
			needSmall, needLarge = needSmall || !p.large, needLarge || p.large
		}
	}
	dbs := []struct {
		need bool
		name string
		size catalogSize
	}{{needSmall, h.o.smallDB, h.o.smallSize}, {needLarge, h.o.largeDB, h.o.largeSize}}
	for _, d := range dbs {
		if !d.need {
			continue
		}
		h.waitQuiet(ctx) // the seed is timed too
		rec, err := prepareCatalog(ctx, h.mdb, h.procs, h.serviceBin, d.name, d.size, h.o.reseed)
		if err != nil {
			return err
		}
		h.seeds[d.name] = rec
		if rec.Reused {
			h.logf("%s: reused (counts match)", d.name)
		} else {
			h.logf("%s: seeded %d copies in %v", d.name, d.size.copies(), rec.Took.Round(time.Millisecond))
		}
	}

	if h.wants("a", "ag") {
		port, err := freePort()
		if err != nil {
			return err
		}
		h.ceilAddr = fmt.Sprintf("127.0.0.1:%d", port)
		if h.ceiling, err = h.procs.start("ceiling", cleanEnv(nil), h.ceilingBin, "-addr", h.ceilAddr); err != nil {
			return err
		}
		if err := waitHTTP(ctx, h.ceiling, "http://"+h.ceilAddr+"/", 10*time.Second); err != nil {
			return err
		}
	}
	// Each target gets a process of its own, so that none inherits another's
	// memory (a process's RSS does not shrink back after a heavier run).
	for _, key := range h.o.targets {
		if db := h.targetDB(key); db != "" {
			if err := h.startService(ctx, key, db, pageSettings(key)); err != nil {
				return err
			}
		}
	}
	if h.o.profile && h.services[h.o.profileTarget] == nil {
		if !slices.Contains([]string{"b", "c", "e"}, h.o.profileTarget) {
			return fmt.Errorf("-profile-target %s: add it to -targets", h.o.profileTarget)
		}
		if err := h.startService(ctx, h.o.profileTarget, h.targetDB(h.o.profileTarget), nil); err != nil {
			return err
		}
	}
	for i, v := range h.o.variants {
		if err := h.startService(ctx, fmt.Sprintf("variant%d", i+1), h.o.largeDB, v); err != nil {
			return err
		}
	}
	if h.wants("fleet") {
		if err := h.startFleet(ctx); err != nil {
			return err
		}
	}
	// Browsers are created through a process of their own: sessions live
	// in memcached, so any process serves them afterwards (as replicas
	// do), and the measured processes see only the load's GETs. (Their
	// /metrics fails after POST or HEAD requests: see README.)
	setupDB := h.o.smallDB
	if !needSmall {
		setupDB = h.o.largeDB
	}
	if err := h.startService(ctx, "setup", setupDB, nil); err != nil {
		return err
	}
	return h.makeTargets(ctx)
}

// cleanEnv is the environment for a child: the harness's own, without any
// LOCALLIBRARY_ or Go runtime setting that would make runs differ, plus extra.
func cleanEnv(extra []string) []string {
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		switch {
		case strings.HasPrefix(name, "LOCALLIBRARY_"), name == "GOGC", name == "GOMEMLIMIT", name == "GOMAXPROCS", name == "GODEBUG":
			continue
		}
		env = append(env, e)
	}
	return append(env, extra...)
}

func (h *harness) startService(ctx context.Context, name, db string, settings []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	metricsPort, err := freePort()
	if err != nil {
		return err
	}
	s := &service{name: name, db: db, env: settings, addr: fmt.Sprintf("127.0.0.1:%d", port),
		metricsAddr: fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	env := []string{
		"LOCALLIBRARY_HTTP_ADDR=" + s.addr,
		"LOCALLIBRARY_METRICS_ADDR=" + s.metricsAddr,
		"LOCALLIBRARY_MYSQL_DSN=" + h.mdb.serviceDSN(db),
		"LOCALLIBRARY_MEMCACHED_SERVERS=" + h.mc.addr,
		"LOCALLIBRARY_SECRET_KEY=bench-secret-key-0123456789abcdef0123456789",
		"LOCALLIBRARY_SHUTDOWN_DRAIN=0s",
		// The benchmark's browsers all come from 127.0.0.1: far more new
		// sessions from one address than the per-address limit allows.
		"LOCALLIBRARY_NEW_SESSIONS_BURST=100000",
	}
	env = append(env, h.o.env...)
	env = append(env, settings...)
	// exec.Cmd takes the last of duplicate variables, so settings win.
	if s.proc, err = h.procs.start("service-"+name, cleanEnv(env), h.serviceBin); err != nil {
		return err
	}
	if err := waitHTTP(ctx, s.proc, s.base()+"/readyz", 20*time.Second); err != nil {
		return err
	}
	// The first page that needs the counts waits for them: on a busy
	// server, a count of a million copies can take longer than a page may
	// wait, so wait here until one has landed.
	if err := waitHTTP(ctx, s.proc, s.base()+"/catalog/books/", time.Minute); err != nil {
		return err
	}
	h.services[name] = s
	return nil
}

// targetDB is the database of the target's service ("" for none).
func (h *harness) targetDB(key string) string {
	switch key {
	case "b", "bg":
		return h.o.smallDB
	case "c", "e":
		return h.o.largeDB
	case "d":
		return map[string]string{"small": h.o.smallDB, "large": h.o.largeDB}[h.o.listDB]
	case "f":
		return map[string]string{"small": h.o.largeDB, "large": h.o.smallDB}[h.o.listDB]
	}
	if p, ok := pageTargets[key]; ok {
		if p.large {
			return h.o.largeDB
		}
		return h.o.smallDB
	}
	return ""
}

// makeTargets creates each target's browsers and its request lines.
func (h *harness) makeTargets(ctx context.Context) error {
	browsersFor := map[string][]browser{}
	create := func(key string) ([]browser, error) {
		if bs, ok := browsersFor[key]; ok {
			return bs, nil
		}
		before, err := h.mc.stats()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		setup := newSite(h.services["setup"].base())
		bs, err := setup.newBrowsers(ctx, h.o.browsers, true)
		if err != nil {
			return nil, fmt.Errorf("creating the browsers of %s: %w", key, err)
		}
		after, err := h.mc.stats()
		if err != nil {
			return nil, err
		}
		h.logf("%d returning browsers for %s in %v", len(bs), key, time.Since(start).Round(time.Millisecond))
		if _, done := h.sizes["dismissed"]; !done {
			sz, err := measureSessions(h.mc, bs, before, after)
			if err != nil {
				return nil, err
			}
			h.sizes["dismissed"] = sz
			if h.o.undismissed > 0 {
				before, _ := h.mc.stats()
				nd, err := setup.newBrowsers(ctx, h.o.undismissed, false)
				if err != nil {
					return nil, fmt.Errorf("creating browsers that keep the notice: %w", err)
				}
				after, _ := h.mc.stats()
				if h.sizes["not dismissed"], err = measureSessions(h.mc, nd, before, after); err != nil {
					return nil, err
				}
			}
		}
		browsersFor[key] = bs
		return bs, nil
	}
	homeLines := func(bs []browser, path string) []reqLine {
		lines := make([]reqLine, len(bs))
		for i, b := range bs {
			lines[i] = reqLine{path: path, cookie: b.cookie}
		}
		return lines
	}
	var err error
	for _, key := range h.o.targets {
		t := &target{key: key, title: targetTitles[key], gen: "wrk", conns: h.o.conns, ceiling: "a"}
		if strings.HasSuffix(key, "g") {
			t.gen, t.ceiling = "go", "ag"
		}
		var bs []browser
		switch key {
		case "a", "ag":
			t.kind, t.addr = "ceiling", h.ceilAddr
			// The same requests as the small home page, cookies and all.
			if bs, err = create("b"); err != nil {
				return err
			}
			t.lines = homeLines(bs, "/")
		case "b", "bg":
			t.kind, t.svc, t.route = "home", h.services[key], "/catalog/"
			if bs, err = create("b"); err != nil {
				return err
			}
			t.lines = homeLines(bs, "/catalog/")
		case "c", "e":
			t.kind, t.svc, t.route = "home", h.services[key], "/catalog/"
			if bs, err = create(key); err != nil {
				return err
			}
			t.lines = homeLines(bs, "/catalog/")
			if key == "e" {
				t.conns = h.o.highConns
				t.title = fmt.Sprintf("home page, 1,000,000 copies, %d connections", h.o.highConns)
			}
		case "d", "f":
			db := h.o.listDB
			if key == "f" {
				db = map[string]string{"small": "large", "large": "small"}[db]
			}
			t.kind, t.svc, t.route = "list", h.services[key], "/catalog/books/"
			if bs, err = create(key); err != nil {
				return err
			}
			size := h.o.largeSize
			if db == "small" {
				size = h.o.smallSize
			}
			pages := (size.Books + 9) / 10 // the default page size
			if h.o.listPages > 0 {
				pages = min(pages, h.o.listPages)
			}
			h.listPages = pages
			t.title = fmt.Sprintf("book list, ?page=1..%d, %s copies", pages, thousands(int64(size.copies())))
			n := max(len(bs), 4096)
			t.lines = make([]reqLine, n)
			for i := range n {
				// A fixed, even spread of pages (Knuth's multiplicative hash).
				p := 1 + int(uint64(i)*2654435761%uint64(pages))
				t.lines[i] = reqLine{path: "/catalog/books/?page=" + strconv.Itoa(p), cookie: bs[i%len(bs)].cookie}
			}
		case "fleet":
			if h.fleetBrowsers, err = create("c"); err != nil {
				return err
			}
			continue // measured apart: see measureFleet
		default:
			p := pageTargets[key]
			t.kind, t.svc, t.route = "list", h.services[key], p.route
			// Browsers are shared by the targets on one catalog: any
			// process reads their sessions from memcached.
			if bs, err = create(map[bool]string{true: "c", false: "b"}[p.large]); err != nil {
				return err
			}
			size := h.o.smallSize
			if p.large {
				size = h.o.largeSize
			}
			paths := p.paths(size)
			t.title = pageTitle(p, size, len(paths))
			t.lines = pageLines(paths, bs)
		}
		if t.svc != nil {
			t.addr = t.svc.addr
		}
		h.targets = append(h.targets, t)
	}
	for i, v := range h.o.variants {
		svc := h.services[fmt.Sprintf("variant%d", i+1)]
		bs, err := create(svc.name)
		if err != nil {
			return err
		}
		name := strings.Join(v, " ")
		h.targets = append(h.targets,
			&target{key: fmt.Sprintf("v%d", i+1), title: "c with " + name, gen: "wrk", svc: svc, addr: svc.addr,
				route: "/catalog/", kind: "home", conns: h.o.conns, lines: homeLines(bs, "/catalog/"), ceiling: "a", baseline: "c"},
			&target{key: fmt.Sprintf("v%de", i+1), title: fmt.Sprintf("e with %s", name), gen: "wrk", svc: svc, addr: svc.addr,
				route: "/catalog/", kind: "home", conns: h.o.highConns, lines: homeLines(bs, "/catalog/"), ceiling: "a", baseline: "e"})
	}
	return nil
}

// load runs the target's generator.
func (h *harness) load(ctx context.Context, t *target, name string, d time.Duration) (loadResult, error) {
	if t.gen == "go" {
		return goLoad(ctx, t.addr, t.lines, t.conns, d, nil)
	}
	return wrkLoad(ctx, h.o.outDir, name, t.addr, t.lines, t.conns, h.o.wrkThreads, d)
}

// measure runs one measured load on t with everything read around it.
func (h *harness) measure(ctx context.Context, t *target, round int) (runResult, error) {
	r := runResult{Target: t.key, Round: round}
	pid := 0
	if t.svc != nil {
		pid = t.svc.proc.pid()
	} else if h.ceiling != nil {
		pid = h.ceiling.pid()
	}
	var before serviceCounters
	var err error
	scraped := t.svc != nil
	if scraped {
		if before, err = readCounters(t.svc.metricsBase(), t.route); err != nil {
			h.note("/metrics of " + t.svc.name + " failed, so its requests are counted by the load generator and its session-store ops are missing: " + firstLine(err.Error()))
			scraped = false
		}
	}
	mcBefore, err := h.mc.stats()
	if err != nil {
		return r, err
	}
	qBefore, oBefore, err := h.mdb.queries(ctx)
	if err != nil {
		return r, err
	}
	cpuBefore, _ := cpuTime(pid)
	mcCPUBefore, _ := cpuTime(h.mc.proc.pid())
	dbCPUBefore, _ := cpuTime(h.mariadbPID)
	busyBefore, start := machineBusy(), time.Now()
	_ = resetPeak(pid)

	r.Load, err = h.load(ctx, t, fmt.Sprintf("%s-round%d", t.key, round), h.o.duration)
	if err != nil {
		return r, err
	}

	if mem, err := readMem(pid); err == nil {
		r.PeakRSS = mem.hwm
	}
	if scraped {
		h.settle(ctx, t)
	}
	cpuAfter, _ := cpuTime(pid)
	r.ServiceCPU = cpuAfter - cpuBefore
	mcCPUAfter, _ := cpuTime(h.mc.proc.pid())
	r.MemcachedCPU = mcCPUAfter - mcCPUBefore
	dbCPUAfter, _ := cpuTime(h.mariadbPID)
	r.MariaDBCPU = dbCPUAfter - dbCPUBefore
	busy, wall := machineBusy()-busyBefore, time.Since(start)
	// Whatever else ran on the machine meanwhile: other people's builds
	// and tests make a run slower without anything here changing.
	other := busy - r.ServiceCPU - r.MemcachedCPU - r.MariaDBCPU - r.Load.GenCPU
	r.OtherCPU = max(0, float64(other)/float64(wall)/float64(runtime.NumCPU()))
	qAfter, oAfter, err := h.mdb.queries(ctx)
	if err != nil {
		return r, err
	}
	r.Queries, r.OtherCommands = qAfter-qBefore, oAfter-oBefore
	mcAfter, err := h.mc.stats()
	if err != nil {
		return r, err
	}
	r.MemcachedCmds = commands(mcAfter) - commands(mcBefore)
	if r.Abandoned, r.Killed, err = h.mdb.drain(ctx, 30*time.Second); err != nil {
		return r, err
	}
	if r.Abandoned > 0 {
		h.logf("%d queries of the services were still running in MariaDB after the run (%d killed after 30s)", r.Abandoned, r.Killed)
	}
	r.ServerReqs = float64(r.Load.Requests)
	if scraped {
		after, err := readCounters(t.svc.metricsBase(), t.route)
		if err != nil {
			h.note("/metrics of " + t.svc.name + " failed, so its requests are counted by the load generator and its session-store ops are missing: " + firstLine(err.Error()))
			return r, nil
		}
		d := after.minus(before)
		r.ServerReqs, r.Non2xx, r.SessionOps, r.CountsCache = d.requests, d.non2xx, d.sessionOps, d.counts
	}
	return r, nil
}

// waitQuiet waits, up to -quiet-wait, until the processes outside the
// benchmark leave most of the machine to it: on a machine shared with
// other people's builds, a run started during a link step measures that.
func (h *harness) waitQuiet(ctx context.Context) {
	if h.o.quiet <= 0 {
		return
	}
	deadline := time.Now().Add(h.o.quietWait)
	for {
		busy0, own0, t0 := machineBusy(), h.ownCPU(), time.Now()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		others := float64(machineBusy()-busy0-(h.ownCPU()-own0)) / float64(time.Since(t0)) / float64(runtime.NumCPU())
		if others < h.o.quiet {
			return
		}
		if time.Now().After(deadline) {
			h.logf("others still use %.0f%% of the machine after waiting %v; running anyway", 100*others, h.o.quietWait)
			return
		}
	}
}

// ownCPU is the CPU used so far by the benchmark's processes and MariaDB.
func (h *harness) ownCPU() time.Duration {
	total := selfCPU()
	for _, pid := range h.pids() {
		if d, err := cpuTime(pid); err == nil {
			total += d
		}
	}
	return total
}

func (h *harness) pids() []int {
	pids := []int{h.mariadbPID, h.mc.proc.pid()}
	if h.ceiling != nil {
		pids = append(pids, h.ceiling.pid())
	}
	for _, s := range h.services {
		pids = append(pids, s.proc.pid())
	}
	return pids
}

// settle waits, briefly, for the requests still in flight when the load
// generator stopped: the service finishes them, and their memcached and
// SQL round trips must be counted with them.
func (h *harness) settle(ctx context.Context, t *target) {
	last := -1.0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		c, err := readCounters(t.svc.metricsBase(), t.route)
		if err != nil {
			return
		}
		if c.requests == last {
			return
		}
		last = c.requests
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// measureAll warms up, runs the rounds, checks for lost visits and profiles.
func (h *harness) measureAll(ctx context.Context) error {
	if h.o.warmup > 0 {
		for _, t := range h.targets {
			h.logf("warming up %s (%s) for %v", t.key, t.title, h.o.warmup)
			if _, err := h.load(ctx, t, t.key+"-warmup", h.o.warmup); err != nil {
				return err
			}
			if _, _, err := h.mdb.drain(ctx, 30*time.Second); err != nil {
				return err
			}
		}
	}
	byKey := map[string]*target{}
	for _, t := range h.targets {
		byKey[t.key] = t
	}
	for round := 1; round <= h.o.rounds; round++ {
		rps := map[string]float64{}
		var roundRuns []runResult
		for _, t := range h.targets {
			if err := ctx.Err(); err != nil {
				return err
			}
			if h.o.rewarm > 0 && round > 1 {
				if _, err := h.load(ctx, t, fmt.Sprintf("%s-rewarm%d", t.key, round), h.o.rewarm); err != nil {
					return err
				}
			}
			time.Sleep(500 * time.Millisecond) // let the last run's connections close
			h.waitQuiet(ctx)
			r, err := h.measure(ctx, t, round)
			if err != nil {
				return fmt.Errorf("round %d, target %s: %w", round, t.key, err)
			}
			rps[t.key] = r.Load.RPS
			roundRuns = append(roundRuns, r)
			h.logf("round %d/%d %-3s %8.0f req/s  p50 %-8v p99 %-8v  errors %d  peak RSS %.1f MiB  other CPU %2.0f%%  (%s)",
				round, h.o.rounds, t.key, r.Load.RPS, r.Load.P50, r.Load.P99, runErrors(r, t),
				float64(r.PeakRSS)/(1<<20), 100*r.OtherCPU, t.title)
		}
		for i := range roundRuns {
			t := byKey[roundRuns[i].Target]
			if c := rps[t.ceiling]; c > 0 {
				roundRuns[i].Ratio = roundRuns[i].Load.RPS / c
			}
		}
		h.runs = append(h.runs, roundRuns...)
	}
	if h.wants("fleet") {
		if err := h.measureFleet(ctx, h.fleetBrowsers); err != nil {
			return err
		}
	}
	if h.o.checkDuration > 0 {
		for _, key := range []string{"b", "c"} {
			t := byKey[key]
			if t == nil {
				continue
			}
			lv, err := h.checkLostVisits(ctx, t)
			if err != nil {
				return fmt.Errorf("lost-visit check on %s: %w", key, err)
			}
			h.lost = append(h.lost, lv)
		}
	}
	if h.o.profile {
		if err := h.runProfile(ctx); err != nil {
			h.notes = append(h.notes, "profile failed: "+err.Error())
		}
	}
	return nil
}

// checkLostVisits reads every browser's count, loads the page with the Go
// generator (which knows how many answers each browser got), and reads
// the counts again: each must have grown by exactly the browser's
// requests plus the final read. A browser whose first read fails is left
// out; a failed final read is retried, and each failed attempt is
// counted as an uncertain visit (it may have been counted).
func (h *harness) checkLostVisits(ctx context.Context, t *target) (lostVisits, error) {
	lv := lostVisits{Target: t.key, Browsers: len(t.lines)}
	s := newSite(t.svc.base())
	bs := make([]browser, len(t.lines))
	for i, l := range t.lines {
		bs[i] = browser{cookie: l.cookie, dismissed: true}
	}
	h.logf("lost-visit check on %s: %d browsers, %d connections, %v", t.key, len(bs), h.o.conns, h.o.checkDuration)
	before, errs := s.revisitAll(ctx, bs)
	lv.Excluded = len(errs)
	if len(errs) > 0 {
		lv.FirstError = "before: " + errs[0].Error()
	}
	res, err := goLoad(ctx, t.addr, t.lines, h.o.conns, h.o.checkDuration, []byte(unavailableMarker))
	if err != nil {
		return lv, err
	}
	lv.LoadErrors = res.SocketErrors + res.BadStatus
	after := make([]int, len(bs))
	uncertain := slices.Clone(res.uncertain)
	failing := make([]bool, len(bs))
	var pending []int
	for i := range bs {
		if before[i] >= 0 {
			pending = append(pending, i)
		}
	}
	for attempt := 0; len(pending) > 0 && attempt < 5; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Second) // let a session store that backs off come back
		}
		sub := make([]browser, len(pending))
		for k, i := range pending {
			sub[k] = bs[i]
		}
		counts, errs := s.revisitAll(ctx, sub)
		if len(errs) > 0 && lv.FirstError == "" {
			lv.FirstError = "after: " + errs[0].Error()
		}
		var again []int
		for k, i := range pending {
			if counts[k] < 0 {
				uncertain[i]++
				again = append(again, i)
				continue
			}
			after[i] = counts[k]
		}
		pending = again
	}
	for _, i := range pending {
		failing[i] = true
	}
	lv.FetchErrors = len(pending)
	for i := range bs {
		lv.Requests += res.perLine[i]
		lv.Unavailable += res.marked[i]
		lv.Uncertain += uncertain[i]
		if before[i] < 0 || failing[i] {
			continue
		}
		want := int64(before[i]) + res.perLine[i] + 1
		got := int64(after[i])
		switch {
		case got < want:
			lv.Lost += want - got
		case got > want+uncertain[i]:
			lv.Extra += got - want - uncertain[i]
		default:
			continue
		}
		if len(lv.Examples) < 5 {
			lv.Examples = append(lv.Examples, fmt.Sprintf("browser %d: %d before, %d answered (%d said unavailable, %d uncertain), %d after",
				i, before[i], res.perLine[i], res.marked[i], uncertain[i], after[i]))
		}
	}
	h.logf("lost-visit check on %s: %d visits, %d lost (%d pages said the count was unavailable), %d extra, %d uncertain, %d left out",
		t.key, lv.Requests, lv.Lost, lv.Unavailable, lv.Extra, lv.Uncertain, lv.Excluded+lv.FetchErrors)
	return lv, nil
}

// runProfile records the large catalog's home-page service under load
// with perf (software cpu-clock sampling with call graphs: hardware
// counters are often missing in VMs), then the whole machine by command.
func (h *harness) runProfile(ctx context.Context) error {
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("perf not found (apt-get install -y linux-perf): %w", err)
	}
	var t *target
	for _, c := range h.targets {
		if c.key == h.o.profileTarget && c.svc != nil {
			t = c
		}
	}
	if t == nil {
		key := h.o.profileTarget
		t = &target{key: key, gen: "wrk", svc: h.services[key], addr: h.services[key].addr, conns: h.o.conns}
		bs, err := newSite(h.services["setup"].base()).newBrowsers(ctx, h.o.browsers, true)
		if err != nil {
			return err
		}
		for _, b := range bs {
			t.lines = append(t.lines, reqLine{path: "/catalog/", cookie: b.cookie})
		}
	}
	dir := filepath.Join(h.o.outDir, "profile")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	secs := strconv.Itoa(max(2, int(h.o.duration/time.Second)-2))
	record := func(name string, args ...string) error {
		h.logf("profiling (%s) for %ss under %s's load", name, secs, t.key)
		perf := exec.CommandContext(ctx, "perf", append(append([]string{"record", "-q", "-e", "cpu-clock", "-F", "999", "-o", filepath.Join(dir, name+".data")}, args...), "--", "sleep", secs)...)
		out := &strings.Builder{}
		perf.Stdout, perf.Stderr = out, out
		loadDone := make(chan error, 1)
		go func() {
			_, err := h.load(ctx, t, "profile-"+name, h.o.duration)
			loadDone <- err
		}()
		time.Sleep(time.Second)
		perfErr := perf.Run()
		if err := <-loadDone; err != nil {
			return err
		}
		if perfErr != nil {
			return fmt.Errorf("perf record: %w\n%s", perfErr, out)
		}
		return nil
	}
	if err := record("service", "-g", "-p", strconv.Itoa(t.svc.proc.pid())); err != nil {
		return err
	}
	if err := record("machine", "-a"); err != nil {
		return err
	}
	reports := []struct {
		file, title string
		args        []string
		keep        func(pct float64, line string) bool
		limit       int
	}{
		{"service-self.txt", "flat: where the service's CPU time is spent (self)",
			[]string{"-i", filepath.Join(dir, "service.data"), "--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0.5"},
			func(float64, string) bool { return true }, 20},
		{"service-children.txt", "inclusive: functions with their callees, below the middleware chain (60% and more) and above 2%",
			[]string{"-i", filepath.Join(dir, "service.data"), "--children", "--sort", "symbol", "-g", "none", "--percent-limit", "2"},
			func(pct float64, line string) bool { return pct < 60 && strings.Contains(line, "[.]") }, 40},
		{"machine-by-command.txt", "the whole machine by command",
			[]string{"-i", filepath.Join(dir, "machine.data"), "--sort", "comm", "-g", "none"},
			func(float64, string) bool { return true }, 10},
	}
	for _, r := range reports {
		cmd := exec.CommandContext(ctx, "perf", append([]string{"report", "--stdio", "--no-header"}, r.args...)...)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("perf report: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, r.file), out, 0o644); err != nil {
			return err
		}
		h.profile = append(h.profile, "== "+r.title+" ("+r.file+")")
		n := 0
		for _, l := range strings.Split(string(out), "\n") {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(t)[0], "%"), 64)
			if err != nil || !r.keep(pct, l) {
				continue
			}
			// perf pads each line with columns we did not ask for.
			l = strings.TrimRight(strings.TrimRight(strings.TrimRight(l, " "), "-"), " ")
			l = strings.TrimRight(strings.TrimRight(l, "-"), " ")
			h.profile = append(h.profile, l)
			if n++; n >= r.limit {
				break
			}
		}
	}
	return nil
}

func (h *harness) writeJSON(path string) error {
	out := map[string]any{
		"machine":       h.machine,
		"seeds":         h.seeds,
		"session_sizes": h.sizes,
		"runs":          h.runs,
		"lost_visits":   h.lost,
		"notes":         h.notes,
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}
