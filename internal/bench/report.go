package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// machineInfo describes where the numbers were taken.
type machineInfo struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"model"`
	Memory    string `json:"memory"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	MariaDB   string `json:"mariadb"`
	Memcached string `json:"memcached"`
	Wrk       string `json:"wrk"`
	Commit    string `json:"commit"`
}

func readMachine(ctx context.Context, root string) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if name, val, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.Model = strings.TrimSpace(val)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	if out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if out, _ := exec.CommandContext(ctx, "wrk", "--version").CombinedOutput(); len(out) > 0 {
		if f := strings.Fields(string(out)); len(f) > 1 {
			m.Wrk = f[1]
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f ms", f)
	case f >= 10:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.2f ms", f)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// summary aggregates a target's rounds.
type summary struct {
	t                          *target
	runs                       []runResult
	rps, ratio, p50, p99       float64 // medians (latencies in ns)
	errors                     int64
	serverReqs                 float64
	mcCmds, sessionOps         float64 // per request
	queries                    int64
	sqlPerReq, sqlBeyondRefill float64
	cpuPerReq, mcCPUPerReq     float64 // µs
	dbCPUPerReq                float64 // µs
	otherCPU                   float64 // median share of the machine used by others
	peakRSS                    int64
	elapsed                    time.Duration
}

func runErrors(r runResult, t *target) int64 {
	bad := r.Load.BadStatus
	if t.svc != nil {
		bad = max(bad, int64(r.Non2xx))
	}
	return bad + r.Load.SocketErrors
}

func (h *harness) summarize(t *target) summary {
	s := summary{t: t}
	var rps, ratio, p50, p99 []float64
	var ops, cpu, mcCPU, dbCPU float64
	var other []float64
	var cmds int64
	var allowed float64
	for _, r := range h.runs {
		if r.Target != t.key {
			continue
		}
		s.runs = append(s.runs, r)
		rps = append(rps, r.Load.RPS)
		if r.Ratio > 0 {
			ratio = append(ratio, r.Ratio)
		}
		p50 = append(p50, float64(r.Load.P50))
		p99 = append(p99, float64(r.Load.P99))
		s.errors += runErrors(r, t)
		s.serverReqs += r.ServerReqs
		cmds += r.MemcachedCmds
		ops += total(r.SessionOps)
		s.queries += r.Queries
		cpu += float64(r.ServiceCPU)
		mcCPU += float64(r.MemcachedCPU)
		dbCPU += float64(r.MariaDBCPU)
		other = append(other, r.OtherCPU)
		s.peakRSS = max(s.peakRSS, r.PeakRSS)
		s.elapsed += r.Load.Elapsed
		// A replica reads the shared counts row every half TTL, and at most
		// one replica claims, counts and stores it per half TTL: four
		// statements per half TTL (and once more at the edge).
		allowed += 4 * (math.Ceil(r.Load.Elapsed.Seconds()/(h.countsTTL.Seconds()/2)) + 1)
	}
	s.rps, s.ratio, s.p50, s.p99 = median(rps), median(ratio), median(p50), median(p99)
	s.otherCPU = median(other)
	if s.serverReqs > 0 {
		s.mcCmds = float64(cmds) / s.serverReqs
		s.sessionOps = ops / s.serverReqs
		s.sqlPerReq = float64(s.queries) / s.serverReqs
		s.sqlBeyondRefill = math.Max(0, float64(s.queries)-allowed) / s.serverReqs
		s.cpuPerReq = cpu / s.serverReqs / float64(time.Microsecond)
		s.mcCPUPerReq = mcCPU / s.serverReqs / float64(time.Microsecond)
		s.dbCPUPerReq = dbCPU / s.serverReqs / float64(time.Microsecond)
	}
	return s
}

// pairRatio is the median over rounds of num's throughput over den's.
func (h *harness) pairRatio(num, den string) float64 {
	byRound := map[int]map[string]float64{}
	for _, r := range h.runs {
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]float64{}
		}
		byRound[r.Round][r.Target] = r.Load.RPS
	}
	var ratios []float64
	for _, m := range byRound {
		if m[den] > 0 && m[num] > 0 {
			ratios = append(ratios, m[num]/m[den])
		}
	}
	return median(ratios)
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func (h *harness) report() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := h.machine
	p("## LocalLibrary benchmark, %s\n\n", h.started.UTC().Format("2006-01-02 15:04 UTC"))
	p("| machine | |\n|---|---|\n")
	p("| CPU | %d × %s |\n| memory | %s |\n| kernel | Linux %s |\n", m.CPUs, m.Model, m.Memory, m.Kernel)
	p("| software | %s, MariaDB %s, memcached %s, wrk %s |\n", m.Go, m.MariaDB, m.Memcached, m.Wrk)
	built := "working tree at " + m.Commit
	if h.o.rev != "" {
		built = "git revision " + h.o.rev + " (HEAD " + m.Commit + ")"
	}
	p("| service | production build (`-tags noembeddeddb`) of the %s |\n", built)
	settings := fmt.Sprintf("%d rounds × %v per target, alternated; %d connections (e: %d); %d returning browsers per target; wrk %d threads; counts TTL %v",
		h.o.rounds, h.o.duration, h.o.conns, h.o.highConns, h.o.browsers, h.o.wrkThreads, h.countsTTL)
	if len(h.o.env) > 0 {
		settings += "; service env " + strings.Join(h.o.env, " ")
	}
	p("| settings | %s |\n\n", settings)

	sums := map[string]summary{}
	p("### Throughput\n\n")
	p("| target | conns | req/s (median) | req/s per round | ratio to ceiling | p50 | p99 | errors | service CPU/req | MariaDB CPU/req | memcached round trips/req | SQL/req | peak RSS | others' CPU |\n")
	p("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, t := range h.targets {
		s := h.summarize(t)
		sums[t.key] = s
		var per []string
		for _, r := range s.runs {
			per = append(per, thousands(int64(r.Load.RPS)))
		}
		ratio := fmt.Sprintf("%.2f", s.ratio)
		if t.ceiling == ceilingGo {
			ratio += " (of " + ceilingGo + ")"
		}
		switch {
		case t.kind == "ceiling":
			ratio = "1"
		case math.IsNaN(s.ratio):
			ratio = "–" // no ceiling in the round
		}
		mcRT, sql, cpu := "–", "–", fmt.Sprintf("%.0f µs", s.cpuPerReq)
		if t.svc != nil {
			mcRT = fmt.Sprintf("%.2f", s.mcCmds)
			sql = fmt.Sprintf("%.5f", s.sqlPerReq)
			if t.kind == "list" {
				sql = fmt.Sprintf("%.2f", s.sqlPerReq)
			}
		}
		dbCPU := "–"
		if t.svc != nil {
			dbCPU = fmt.Sprintf("%.0f µs", s.dbCPUPerReq)
		}
		p("| %s: %s (%s) | %d | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %.0f%% |\n",
			t.key, t.title, t.gen, t.conns, thousands(int64(s.rps)), strings.Join(per, ", "), ratio,
			ms(time.Duration(s.p50)), ms(time.Duration(s.p99)), s.errors, cpu, dbCPU, mcRT, sql, mib(s.peakRSS), 100*s.otherCPU)
	}
	p("\nreq/s, p50 and p99 are medians over the rounds; the ratio is the median of each round's req/s over the ceiling's in the same round. ")
	p("Errors are non-2xx answers (counted by the service) plus socket errors and timeouts (counted by the load generator), summed over the rounds. ")
	p("Memcached round trips are the commands memcached served (get, set, add, incr, touch, delete) divided by the requests the service answered; SQL/req likewise from MariaDB's per-user statistics. ")
	p("Peak RSS is the service's VmHWM during the run (reset before it). ")
	p("Others' CPU is the share of the machine used during the run by processes outside the benchmark (not the service, load generator, memcached or MariaDB): other people's builds and tests on a shared machine; a run where it is high is slow for that reason.\n")
	for _, r := range h.runs {
		if r.Abandoned > 0 {
			p("\n- %s, round %d: %d of the service's queries were still running in MariaDB when the run ended (requests that timed out leave them there); the next run waited for them (%d killed after 30 s).", r.Target, r.Round, r.Abandoned, r.Killed)
		}
	}
	p("\n\n")

	p("### Targets\n\n| target | goal | measured | |\n|---|---|---|---|\n")
	row := func(name, goal, measured string, ok bool, have bool) {
		if !have {
			p("| %s | %s | not run | |\n", name, goal)
			return
		}
		p("| %s | %s | %s | %s |\n", name, goal, measured, mark(ok))
	}
	{
		var parts []string
		ok, have := true, false
		for _, k := range []string{home3k, home1m} {
			if s, found := sums[k]; found && !math.IsNaN(s.ratio) {
				have = true
				parts = append(parts, fmt.Sprintf("%s %.2f", k, s.ratio))
				ok = ok && s.ratio >= 0.30
			}
		}
		row("home page vs ceiling", "≥ 0.30 of ("+ceilingWrk+") at 64 connections", strings.Join(parts, ", "), ok, have)
	}
	{
		r := h.pairRatio(home1m, home3k)
		row("1,000,000 vs 3,000 copies", home1m+" ≥ 0.90 of "+home3k, fmt.Sprintf("%.2f", r), r >= 0.90, !math.IsNaN(r))
	}
	{
		var parts []string
		ok, have := true, false
		for _, k := range []string{home3k, home1m, home1mHigh} {
			if s, found := sums[k]; found && s.serverReqs > 0 {
				have = true
				parts = append(parts, fmt.Sprintf("%s %.2f (service-side ops %.2f)", k, s.mcCmds, s.sessionOps))
				ok = ok && s.mcCmds <= 2.0001
			}
		}
		row("memcached round trips per returning home page", "≤ 2", strings.Join(parts, ", "), ok, have)
	}
	{
		var parts []string
		ok, have := true, false
		for _, k := range []string{home3k, home1m, home1mHigh} {
			if s, found := sums[k]; found && s.serverReqs > 0 {
				have = true
				parts = append(parts, fmt.Sprintf("%s %d queries in %.0f s (%.2f/s, %.6f/req; beyond the counts row per half TTL: %.6f/req)",
					k, s.queries, s.elapsed.Seconds(), float64(s.queries)/s.elapsed.Seconds(), s.sqlPerReq, s.sqlBeyondRefill))
				ok = ok && s.sqlBeyondRefill == 0
			}
		}
		row("SQL queries per home page while the counts are fresh", "0 (only the counts row, per half TTL)", strings.Join(parts, "; "), ok, have)
	}
	{
		sz, have := h.sizes["dismissed"]
		nd := h.sizes["not dismissed"]
		row("bytes per session in memcached", "≤ 200", fmt.Sprintf("%.0f (key+value, notice dismissed); %.0f with the notice not dismissed", sz.KeyValue, nd.KeyValue), sz.KeyValue <= 200 && sz.KeyValue > 0, have)
	}
	{
		s, have := sums[home1mHigh]
		row(fmt.Sprintf("service RSS at %d connections", h.o.highConns), "≤ 64 MB", mib(s.peakRSS)+" peak (VmHWM)", s.peakRSS > 0 && s.peakRSS <= 64<<20, have && s.peakRSS > 0)
	}
	{
		var n int64
		for _, t := range h.targets {
			n += sums[t.key].errors
		}
		row("errors", "0", fmt.Sprintf("%d over all runs", n), n == 0, len(h.runs) > 0)
	}
	{
		var lost, visits int64
		var parts []string
		clean := true
		for _, lv := range h.lost {
			lost += lv.Lost
			visits += lv.Requests
			parts = append(parts, fmt.Sprintf("%s: %d lost of %s", lv.Target, lv.Lost, thousands(lv.Requests)))
			clean = clean && lv.Extra == 0 && lv.FetchErrors == 0
		}
		row("lost visits", "0", strings.Join(parts, "; "), lost == 0 && clean, len(h.lost) > 0)
	}

	if len(h.sizes) > 0 {
		p("\n### Sessions in memcached (per browser)\n\n")
		p("| browsers | n | session key | session value | counter key | counter value | key+value | memcached items (metadump size) | memcached `bytes` growth |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, name := range []string{"dismissed", "not dismissed"} {
			sz, ok := h.sizes[name]
			if !ok {
				continue
			}
			p("| notice %s | %d | %.0f B | %.0f B | %.0f B | %.0f B | **%.0f B** | %.0f B in %.1f items | %.0f B |\n",
				name, sz.Browsers, sz.SessionKey, sz.SessionValue, sz.CounterKey, sz.CounterValue, sz.KeyValue, sz.Items, sz.ItemsPerSess, sz.StatsBytes)
			if sz.Missing > 0 {
				p("\n%d of these sessions were not found in memcached.\n", sz.Missing)
			}
		}
		p("\nA browser that dismissed the notice went through the first visit, the cookie check and the POST; one that did not stopped after its first page. ")
		p("memcached's item sizes add its per-item header (about 50 bytes) and slab rounding is not included.\n")
	}

	if len(h.seeds) > 0 {
		p("\n### Catalogs\n\n| database | authors / books / copies | seed |\n|---|---|---|\n")
		for _, name := range []string{h.o.smallDB, h.o.largeDB} {
			rec, ok := h.seeds[name]
			if !ok {
				continue
			}
			took := "–"
			if rec.Took > 0 {
				took = rec.Took.Round(time.Millisecond).String()
			}
			how := "seeded in this run in " + took
			if rec.Reused {
				how = "reused (its row counts matched); seed time unknown (`-reseed` measures it)"
				if rec.Took > 0 {
					how = fmt.Sprintf("reused (its row counts matched); seeded on %s in %s", rec.When.Format("2006-01-02"), took)
				}
			}
			p("| %s | %s / %s / %s | %s |\n", name, thousands(int64(rec.Size.Authors)), thousands(int64(rec.Size.Books)), thousands(int64(rec.Size.copies())), how)
		}
	}

	if len(h.lost) > 0 {
		p("\n### Lost visits\n\nEach browser's count was read, the page loaded for %v with the Go generator (%d connections, each browser on one connection, its answers counted), and the count read again; it must have grown by the browser's answered requests plus the final read.\n\n", h.o.checkDuration, h.o.conns)
		p("| target | browsers | visits made (2xx) | lost | of which the page said \"unavailable\" | counted extra | uncertain | load errors | browsers left out |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, lv := range h.lost {
			p("| %s | %d | %s | %d | %d | %d | %d | %d | %d |\n", lv.Target, lv.Browsers, thousands(lv.Requests), lv.Lost, lv.Unavailable, lv.Extra, lv.Uncertain, lv.LoadErrors, lv.Excluded+lv.FetchErrors)
		}
		p("\nUncertain: requests whose connection failed after they were sent, and failed final reads (retried); a browser whose first read failed is left out.\n")
		for _, lv := range h.lost {
			if lv.FirstError != "" {
				p("\n%s: first read failure: %s\n", lv.Target, lv.FirstError)
			}
			for _, e := range lv.Examples {
				p("\n- %s: %s", lv.Target, e)
			}
			if len(lv.Examples) > 0 {
				p("\n")
			}
		}
	}

	if a, ag := sums[ceilingWrk], sums[ceilingGo]; a.t != nil && ag.t != nil {
		p("\n### Load generators\n\nThe generator shares the 2 cores with what it measures; the lighter one leaves more to the server.\n\n")
		p("| target | wrk req/s | Go req/s | wrk CPU per 1,000 req | Go CPU per 1,000 req |\n|---|---:|---:|---:|---:|\n")
		for _, pair := range [][2]string{{ceilingWrk, ceilingGo}, {home3k, home3kGo}} {
			w, g := sums[pair[0]], sums[pair[1]]
			if w.t == nil || g.t == nil {
				continue
			}
			p("| %s | %s | %s | %s | %s |\n", w.t.title, thousands(int64(w.rps)), thousands(int64(g.rps)), genCPU(w), genCPU(g))
		}
	}

	var variants []*target
	for _, t := range h.targets {
		if t.baseline != "" {
			variants = append(variants, t)
		}
	}
	if len(variants) > 0 {
		p("\n### Settings tried on the large catalog's home page\n\nEach setting runs in its own service process beside the baseline's, alternated in the same rounds.\n\n")
		p("| run | conns | req/s (median) | vs baseline (median of rounds) | p50 | p99 | service CPU/req | peak RSS | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, base := range []string{home1m, home1mHigh} {
			if s, ok := sums[base]; ok {
				p("| %s: baseline | %d | %s | 1 | %s | %s | %.0f µs | %s | %d |\n", base, s.t.conns, thousands(int64(s.rps)), ms(time.Duration(s.p50)), ms(time.Duration(s.p99)), s.cpuPerReq, mib(s.peakRSS), s.errors)
			}
			for _, t := range variants {
				if t.baseline != base {
					continue
				}
				s := sums[t.key]
				p("| %s: %s | %d | %s | %.2f | %s | %s | %.0f µs | %s | %d |\n", t.key, t.title, t.conns, thousands(int64(s.rps)), h.pairRatio(t.key, base),
					ms(time.Duration(s.p50)), ms(time.Duration(s.p99)), s.cpuPerReq, mib(s.peakRSS), s.errors)
			}
		}
	}

	if len(h.profile) > 0 {
		p("\n### CPU profile (perf, cpu-clock) of target %s's service under its load\n\n```\n%s\n```\n", h.o.profileTarget, strings.Join(h.profile, "\n"))
	}
	p("%s", h.fleetReport())
	if len(h.notes) > 0 {
		p("\n### Notes\n\n")
		for _, n := range h.notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func genCPU(s summary) string {
	var cpu time.Duration
	var n int64
	for _, r := range s.runs {
		cpu += r.Load.GenCPU
		n += r.Load.Requests
	}
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", float64(cpu)/float64(time.Millisecond)/float64(n)*1000)
}
