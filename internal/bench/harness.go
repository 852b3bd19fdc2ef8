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

	"github.com/locallibrary/locallibrary/config"
	"github.com/locallibrary/locallibrary/internal/testkit"
)

// service is one running LocalLibrary process.
type service struct {
	name string
	db   string
	env  []string // the settings it was started with beyond the harness's own
	*testkit.Service
}

func (s *service) base() string { return "http://" + s.Addr }

func (s *service) metricsBase() string { return "http://" + s.MetricsAddr }

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

	procs      *testkit.Procs
	mdb        *mariadb
	mc         *memcached
	mariadbPID int
	serviceBin string
	ceilingBin string

	started       time.Time
	machine       machineInfo
	seeds         map[string]seedRecord
	ceiling       *testkit.Proc
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
		_ = h.procs.StopAll(3 * time.Second)
	}
	if h.mdb != nil {
		h.mdb.close()
	}
}

// wants tells whether target name was asked for.
func (h *harness) wants(name string) bool { return slices.Contains(h.o.targets, name) }

// wanted are the rows of the targets asked for, in -targets' order.
func (h *harness) wanted() []targetSpec {
	out := make([]targetSpec, 0, len(h.o.targets))
	for _, name := range h.o.targets {
		spec, _ := specOf(name) // checked by parseOptions
		out = append(out, spec)
	}
	return out
}

// setUp builds, starts memcached, prepares the catalogs, starts the
// services and creates the browsers.
func (h *harness) setUp(ctx context.Context) error {
	h.started = time.Now()
	h.machine = readMachine(ctx, h.root)
	h.seeds = map[string]seedRecord{}
	h.services = map[string]*service{}
	h.sizes = map[string]sessionSize{}
	defaults, err := config.Load(func(string) string { return "" })
	if err != nil {
		return err
	}
	h.countsTTL = defaults.CountsTTL
	for _, e := range h.o.env {
		if v, ok := strings.CutPrefix(e, "LOCALLIBRARY_COUNTS_TTL="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				h.countsTTL = d
			}
		}
	}
	usesWrk, needSmall, needLarge, needCeiling := false, false, len(h.o.variants) > 0 || h.o.profile, false
	for _, spec := range h.wanted() {
		usesWrk = usesWrk || spec.gen == "wrk"
		needSmall = needSmall || !spec.large
		needLarge = needLarge || spec.large
		needCeiling = needCeiling || spec.kind == "ceiling"
	}
	if usesWrk || len(h.o.variants) > 0 || h.o.profile {
		if _, err := exec.LookPath("wrk"); err != nil {
			return fmt.Errorf("wrk not found (apt-get install -y wrk): %w", err)
		}
	}
	if h.procs, err = testkit.NewProcs(filepath.Join(h.o.outDir, "logs")); err != nil {
		return err
	}
	h.procs.RecordPIDs(filepath.Join(h.o.outDir, "children.pids"))
	h.logf("building the service%s and the ceiling program", map[bool]string{true: " at " + h.o.rev, false: ""}[h.o.rev != ""])
	if err := h.build(ctx); err != nil {
		return err
	}
	if h.mdb, err = openMariaDB(ctx, h.o.mysqlDSN); err != nil {
		return err
	}
	h.machine.MariaDB = h.mdb.version
	h.mariadbPID = testkit.FindProcess("mariadbd")
	if err := h.mdb.setupUserStats(ctx, []string{h.o.smallDB, h.o.largeDB}); err != nil {
		h.notes = append(h.notes, "SQL queries counted server-wide (Questions), so other clients of the server add to them: "+err.Error())
	}
	if h.mc, err = startMemcached(ctx, h.procs); err != nil {
		return err
	}
	h.machine.Memcached = h.mc.version
	h.logf("memcached %s on %s", h.mc.version, h.mc.addr)

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

	if needCeiling {
		if h.ceilAddr, err = testkit.FreeAddr(); err != nil {
			return err
		}
		if h.ceiling, err = h.procs.Start("ceiling", nil, h.ceilingBin, "-addr", h.ceilAddr); err != nil {
			return err
		}
		if err := waitHTTP(ctx, h.ceiling, "http://"+h.ceilAddr+"/", 10*time.Second); err != nil {
			return err
		}
	}
	// Each target gets a process of its own, so that none inherits another's
	// memory (a process's RSS does not shrink back after a heavier run).
	for _, spec := range h.wanted() {
		if spec.kind == "home" || spec.kind == "list" {
			if err := h.startService(ctx, spec.name, h.catalogDB(spec), spec.settings); err != nil {
				return err
			}
		}
	}
	if h.o.profile && h.services[h.o.profileTarget] == nil {
		spec, _ := specOf(h.o.profileTarget)
		if spec.kind != "home" {
			return fmt.Errorf("-profile-target %s: add it to -targets", h.o.profileTarget)
		}
		if err := h.startService(ctx, spec.name, h.catalogDB(spec), spec.settings); err != nil {
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

// waitHTTP polls url until it answers 200, the process exits or the time is up.
func waitHTTP(ctx context.Context, p *testkit.Proc, url string, limit time.Duration) error {
	return testkit.WaitFor(ctx, p, limit, p.Name+" answers "+url, func() error { return testkit.GetOK(ctx, url) })
}

func (h *harness) startService(ctx context.Context, name, db string, settings []string) error {
	env := []string{
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
	svc, err := testkit.StartService(ctx, h.procs, "service-"+name, h.serviceBin, env)
	if err != nil {
		return err
	}
	// The first page that needs the counts waits for them: on a busy
	// server, a count of a million copies can take longer than a page may
	// wait, so wait here until one has landed.
	if err := waitHTTP(ctx, svc.Proc, "http://"+svc.Addr+"/catalog/books/", time.Minute); err != nil {
		return err
	}
	h.services[name] = &service{name: name, db: db, env: settings, Service: svc}
	return nil
}

// catalogDB is the database of the target's catalog.
func (h *harness) catalogDB(spec targetSpec) string {
	if spec.large {
		return h.o.largeDB
	}
	return h.o.smallDB
}

// catalogSize is the size of the target's catalog.
func (h *harness) catalogSize(spec targetSpec) catalogSize {
	if spec.large {
		return h.o.largeSize
	}
	return h.o.smallSize
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
	for _, spec := range h.wanted() {
		t := &target{key: spec.name, title: spec.title, gen: spec.gen, kind: spec.kind, route: spec.route,
			conns: h.o.conns, ceiling: spec.ceiling(), svc: h.services[spec.name], addr: h.ceilAddr}
		if spec.highConns {
			t.conns = h.o.highConns
			t.title = fmt.Sprintf("%s, %d connections", strings.TrimSuffix(spec.title, ", high connections"), h.o.highConns)
		}
		if t.svc != nil {
			t.addr = t.svc.Addr
		}
		bs, err := create(spec.browserGroup())
		if err != nil {
			return err
		}
		if spec.kind == "fleet" {
			h.fleetBrowsers = bs
			continue // measured apart: see measureFleet
		}
		switch {
		case spec.paths != nil:
			size := h.catalogSize(spec)
			paths := spec.paths(h, size)
			t.title = pageTitle(spec, len(paths), size)
			t.lines = spreadLines(paths, bs)
			h.listPages = len(paths)
		case spec.kind == "ceiling":
			// The same requests as the small home page, cookies and all.
			t.lines = homeLines(bs, "/")
		default:
			t.lines = homeLines(bs, "/catalog/")
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
			&target{key: fmt.Sprintf("v%d", i+1), title: home1m + " with " + name, gen: "wrk", svc: svc, addr: svc.Addr,
				route: "/catalog/", kind: "home", conns: h.o.conns, lines: homeLines(bs, "/catalog/"), ceiling: ceilingWrk, baseline: home1m},
			&target{key: fmt.Sprintf("v%dh", i+1), title: home1mHigh + " with " + name, gen: "wrk", svc: svc, addr: svc.Addr,
				route: "/catalog/", kind: "home", conns: h.o.highConns, lines: homeLines(bs, "/catalog/"), ceiling: ceilingWrk, baseline: home1mHigh})
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
		pid = t.svc.PID()
	} else if h.ceiling != nil {
		pid = h.ceiling.PID()
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
	cpuBefore, _ := testkit.CPUTime(pid)
	mcCPUBefore, _ := testkit.CPUTime(h.mc.proc.PID())
	dbCPUBefore, _ := testkit.CPUTime(h.mariadbPID)
	busyBefore, start := testkit.MachineBusy(), time.Now()
	_ = testkit.ResetPeak(pid)

	r.Load, err = h.load(ctx, t, fmt.Sprintf("%s-round%d", t.key, round), h.o.duration)
	if err != nil {
		return r, err
	}

	if _, peak, err := testkit.Mem(pid); err == nil {
		r.PeakRSS = peak
	}
	if scraped {
		h.settle(ctx, t)
	}
	cpuAfter, _ := testkit.CPUTime(pid)
	r.ServiceCPU = cpuAfter - cpuBefore
	mcCPUAfter, _ := testkit.CPUTime(h.mc.proc.PID())
	r.MemcachedCPU = mcCPUAfter - mcCPUBefore
	dbCPUAfter, _ := testkit.CPUTime(h.mariadbPID)
	r.MariaDBCPU = dbCPUAfter - dbCPUBefore
	busy, wall := testkit.MachineBusy()-busyBefore, time.Since(start)
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
		busy0, own0, t0 := testkit.MachineBusy(), h.ownCPU(), time.Now()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		others := float64(testkit.MachineBusy()-busy0-(h.ownCPU()-own0)) / float64(time.Since(t0)) / float64(runtime.NumCPU())
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
	total := testkit.SelfCPU()
	for _, pid := range h.pids() {
		if d, err := testkit.CPUTime(pid); err == nil {
			total += d
		}
	}
	return total
}

func (h *harness) pids() []int {
	pids := []int{h.mariadbPID, h.mc.proc.PID()}
	if h.ceiling != nil {
		pids = append(pids, h.ceiling.PID())
	}
	for _, s := range h.services {
		pids = append(pids, s.PID())
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
		for _, key := range []string{home3k, home1m} {
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
		t = &target{key: key, gen: "wrk", svc: h.services[key], addr: h.services[key].Addr, conns: h.o.conns}
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
	if err := record("service", "-g", "-p", strconv.Itoa(t.svc.PID())); err != nil {
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
