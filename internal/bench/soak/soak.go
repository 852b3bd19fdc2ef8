package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// idleWait is how long after its connections close the service is left
// before its goroutines are read: fasthttp's idle workers leave 10–20s
// after their connection ends.
const idleWait = 22 * time.Second

// result is everything the report says.
type result struct {
	opt options

	browsersMade int
	setupTook    time.Duration
	loadTook     time.Duration

	requests, home, errors, unavailable, outOfOrder, newSession int64
	kinds                                                       map[string]int64
	examples                                                    []string
	latency                                                     histogram

	wrongCounts    int // browsers whose final count is not 2 + their counted home pages
	wrongExplained int // of those, browsers whose count is higher by no more than their failed or unavailable home pages
	unverified     int // browsers whose final read failed
	wrongExamples  []string

	setupErrors, setupUnavailable, loadErrors, loadUnavailable, finalUnavailable int64

	beforeSetup, afterLoad     sample
	start, warm, end           sample // under load: at its start, after warm-up, at its end
	goroutineMin, goroutineMax float64
	sampledRSSMax              float64
	idleBefore, idleAfter      sample  // no connections open, before and after the load
	peakRSS                    float64 // VmHWM: the whole life of the process
	evictions                  string
	mcConns                    string // memcached's own connection figures
	flood                      *floodResult
	faultLog                   []string // what -faults did, and when
	faultsDone                 chan struct{}
	loadNon2xx                 map[string]float64 // answers not 2xx during the load, by the service's count

	// cores busy during the load: the whole machine, and the service,
	// memcached and the soak itself (its load generator)
	cpuMachine, cpuService, cpuMemcached, cpuSoak, cpuOthers float64
}

func soak(ctx context.Context, opt options, cat catalog, svc, mc *process, faults func(context.Context, *tally, *result),
	say func(string, ...any), stdout io.Writer) (*result, error) {
	res := &result{opt: opt}
	metrics := newMetricsReader(svc.metricsAddr)
	var err error
	t := &tally{}
	l := &loader{client: newClient(svc.addr, opt.setupConns, opt.timeout), base: "http://" + svc.addr,
		timeout: opt.timeout, catalog: cat, tally: t}

	if res.beforeSetup, err = metrics.read(); err != nil {
		return nil, err
	}
	say("creating %d browsers (first visit through the cookie check), %d at a time …", opt.browsers, opt.setupConns)
	begun := time.Now()
	browsers := l.createBrowsers(ctx, opt.browsers, opt.setupConns)
	res.setupTook = time.Since(begun)
	res.setupErrors, res.setupUnavailable = t.errors.Load(), t.setupUnavailable.Load()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted while creating browsers")
	}
	res.browsersMade = len(browsers)
	say("created %d browsers in %s (%d failed)", len(browsers), res.setupTook.Round(100*time.Millisecond), opt.browsers-len(browsers))
	if len(browsers) < opt.conns {
		return nil, fmt.Errorf("only %d browsers could be created, fewer than -conns %d; first errors:\n%s", len(browsers), opt.conns, joinLines(t.examples))
	}
	l.client.CloseIdleConnections()
	if res.idleBefore, err = metrics.settle(ctx, idleWait, idleWait+10*time.Second); err != nil {
		return nil, err
	}

	if opt.flood > 0 {
		res.flood = l.flood(ctx, opt, say)
	}

	// The load: opt.conns workers, each with one request in flight, taking
	// browsers from a shared queue so a browser is never used by two at once.
	l.client = newClient(svc.addr, opt.conns, opt.timeout)
	free := make(chan *browser, len(browsers))
	for _, i := range rand.Perm(len(browsers)) {
		free <- browsers[i]
	}
	if res.start, err = metrics.read(); err != nil {
		return nil, err
	}
	cpuPids := []int{svc.PID(), os.Getpid()}
	// Not a given node's (no process here), nor the one node -faults restarts.
	if mc.Proc != nil && (faults == nil || opt.memcachedNodes > 1) {
		cpuPids = append(cpuPids, mc.PID())
	}
	cpuStart, err := readCPU(cpuPids...)
	if err != nil {
		return nil, err
	}
	say("load: %d connections for %s; baseline after %s; a line every %s", opt.conns, opt.duration, opt.warmup, opt.sampleEvery)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	hists := make([]histogram, opt.conns)
	var workers sync.WaitGroup
	loadStart := time.Now()
	if faults != nil {
		res.faultsDone = make(chan struct{})
		go func() {
			defer close(res.faultsDone)
			faults(loadCtx, t, res)
		}()
	}
	for w := range opt.conns {
		workers.Add(1)
		go func() {
			defer workers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(loadStart.UnixNano())))
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				var b *browser
				select {
				case b = <-free:
				case <-loadCtx.Done():
					return
				}
				l.visit(b, rng, req, resp, &hists[w])
				free <- b
				if loadCtx.Err() != nil {
					return
				}
			}
		}()
	}

	lastAt, lastReq, lastCPU := loadStart, int64(0), cpuStart
	progress := func(s sample, mark string) {
		reqs := t.requests.Load()
		rate, others := "     -", "   -"
		if took := s.at.Sub(lastAt); took >= time.Second {
			rate = fmt.Sprintf("%6.0f", float64(reqs-lastReq)/took.Seconds())
			if c, err := readCPU(cpuPids...); err == nil {
				others = fmt.Sprintf("%4.2f", c.others(lastCPU)/took.Seconds())
				lastCPU = c
			}
		}
		lastAt, lastReq = s.at, reqs
		fmt.Fprintf(stdout, "  %6s  req %11s (%s/s)  errors %d  unavailable %d  out-of-order %d  rss %6.1f MiB  goroutines %4.0f  memcached errors %.0f  other CPU %s%s\n",
			clock(s.at.Sub(loadStart)), commas(reqs), rate, t.errors.Load(), t.unavailable.Load(), t.outOfOrder.Load(),
			mib(s.rss), s.goroutines, s.storeErrorsTotal()-res.start.storeErrorsTotal(), others, mark)
	}
	samplerCtx, stopSampler := context.WithCancel(ctx)
	var samples []sample
	var warmTaken bool
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(opt.sampleEvery)
		defer tick.Stop()
		warmTimer := time.NewTimer(opt.warmup)
		defer warmTimer.Stop()
		for {
			isWarm := false
			select {
			case <-samplerCtx.Done():
				return
			case <-tick.C:
			case <-warmTimer.C:
				isWarm = true
			}
			s, err := metrics.read()
			if err != nil {
				t.fail("metrics: "+errKind(err), err.Error())
				continue
			}
			mark := ""
			if isWarm {
				res.warm, warmTaken = s, true
				mark = "  ← baseline (after warm-up)"
			}
			samples = append(samples, s)
			progress(s, mark)
		}
	}()

	interrupted := false
	select {
	case <-time.After(opt.duration):
	case <-ctx.Done():
		interrupted = true
	}
	stopSampler()
	<-samplerDone
	if interrupted {
		stopLoad()
		workers.Wait()
		return nil, fmt.Errorf("interrupted after %s of load (%s requests, %d errors)", clock(time.Since(loadStart)), commas(t.requests.Load()), t.errors.Load())
	}
	cpuEnd, cpuErr := readCPU(cpuPids...)
	cpuTook := time.Since(loadStart).Seconds()
	res.end, err = metrics.read() // still under load
	stopLoad()
	workers.Wait()
	res.loadTook = time.Since(loadStart)
	if res.faultsDone != nil {
		<-res.faultsDone
	}

	if err != nil {
		return nil, fmt.Errorf("reading /metrics at the end of the load: %w", err)
	}
	progress(res.end, "  ← end of the load")
	if cpuErr != nil {
		return nil, cpuErr
	}
	res.cpuOthers = cpuEnd.others(cpuStart) / cpuTook
	res.cpuMachine = (cpuEnd.machine - cpuStart.machine) / cpuTook
	res.cpuService = (cpuEnd.procs[0] - cpuStart.procs[0]) / cpuTook
	res.cpuSoak = (cpuEnd.procs[1] - cpuStart.procs[1]) / cpuTook
	if len(cpuPids) > 2 {
		res.cpuMemcached = (cpuEnd.procs[2] - cpuStart.procs[2]) / cpuTook
	}
	if !warmTaken {
		return nil, fmt.Errorf("no /metrics reading after warm-up: the service did not answer /metrics in time")
	}
	res.afterLoad, err = metrics.read()
	if err != nil {
		return nil, err
	}
	res.loadErrors = t.errors.Load() - res.setupErrors
	res.loadUnavailable = t.unavailable.Load() - res.setupUnavailable
	say("load stopped after %s; reading every browser's count …", res.loadTook.Round(100*time.Millisecond))
	// The requests that counted visits are over, so no further count moves.
	l.finalReads(ctx, browsers, opt.setupConns)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted while reading the final counts")
	}
	l.client.CloseIdleConnections()
	if res.idleAfter, err = metrics.settle(ctx, idleWait, idleWait+10*time.Second); err != nil {
		return nil, err
	}
	_, peak, err := testkit.Mem(svc.PID())
	if err != nil {
		return nil, err
	}
	res.peakRSS = float64(peak)
	if stats, err := testkit.MemcachedStats(mc.addr); err == nil {
		res.evictions = stats["evictions"]
		// connection_structures: memcached's high-water mark of connection
		// structures, about the most sockets open at once (the listener and
		// closed connections not yet reaped included).
		res.mcConns = fmt.Sprintf("refused %s; connection_structures %s (-c %s)",
			stats["rejected_connections"], stats["connection_structures"], stats["max_connections"])
	} else {
		res.evictions = "unknown (" + err.Error() + ")"
	}

	res.requests, res.home, res.errors = t.requests.Load(), t.home.Load(), t.errors.Load()
	res.unavailable, res.outOfOrder, res.newSession = t.unavailable.Load(), t.outOfOrder.Load(), t.newSession.Load()
	res.finalUnavailable = t.finalUnavailable.Load()
	res.kinds, res.examples = t.kindsCopy(), t.examples
	for i := range hists {
		res.latency.merge(&hists[i])
	}
	res.goroutineMin, res.goroutineMax = res.warm.goroutines, res.warm.goroutines
	for _, s := range append(samples, res.end) {
		res.sampledRSSMax = max(res.sampledRSSMax, s.rss)
		if !s.at.Before(res.warm.at) {
			res.goroutineMin = min(res.goroutineMin, s.goroutines)
			res.goroutineMax = max(res.goroutineMax, s.goroutines)
		}
	}
	res.loadNon2xx = map[string]float64{}
	before := res.start.non2xx()
	for status, n := range res.afterLoad.non2xx() {
		if d := n - before[status]; d > 0 {
			res.loadNon2xx[status] = d
		}
	}
	// A browser's count: 1 for its first visit, one per home page it was
	// shown a count on during the load, and 1 for the final read itself.
	// A page that failed or said the count is unavailable should not have
	// counted; if the store did count it (a timeout after memcached had
	// done the increment), the count is higher by at most their number.
	for i, b := range browsers {
		want := uint64(b.home) + 2
		switch {
		case b.finalErr:
			res.unverified++
		case b.final != want:
			res.wrongCounts++
			if b.final > want && b.final-want <= uint64(b.unavailable+b.failedHome)+uint64(b.finalTries) {
				res.wrongExplained++
			}
			if len(res.wrongExamples) < 10 {
				res.wrongExamples = append(res.wrongExamples, fmt.Sprintf("browser %d: count %d, want %d (%d counted home pages; %d unavailable, %d failed, %d unavailable final reads)",
					i, b.final, want, b.home, b.unavailable, b.failedHome, b.finalTries))
			}
		}
	}
	return res, nil
}

func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func mib(b float64) float64 { return b / (1 << 20) }

// commas writes 1234567 as 1,234,567.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + commas(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += "  " + l + "\n"
	}
	return out
}
