package main

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"time"
)

// goroutineBand is how far the goroutines at the end of the load may be
// from the count after warm-up and still be called stable.
func goroutineBand(warm float64) float64 { return max(20, math.Round(warm*0.10)) }

func (r *result) rssGrowth() float64 { return (r.end.rss - r.warm.rss) / r.warm.rss * 100 }

type target struct {
	name string
	met  bool
}

func (r *result) targets() []target {
	return []target{
		{"duration", r.loadTook >= r.opt.duration},
		{"browsers", r.browsersMade == r.opt.browsers},
		{"errors", r.errors == 0},
		{"unavailable", r.unavailable == 0},
		{"wrong counts", r.wrongCounts == 0 && r.unverified == 0},
		{"out of order", r.outOfOrder == 0},
		{"RSS growth", r.rssGrowth() < 10},
		{"goroutines", math.Abs(r.end.goroutines-r.warm.goroutines) <= goroutineBand(r.warm.goroutines)},
		{"office", r.flood == nil || r.flood.officeCounted == r.opt.office},
		{"returning browsers keep their sessions", r.newSession == 0},
	}
}

func (r *result) met(name string) string {
	for _, t := range r.targets() {
		if t.name == name {
			if t.met {
				return "yes"
			}
			return "**no**"
		}
	}
	return ""
}

// missed names the targets the run missed.
func (r *result) missed() []string {
	var out []string
	for _, t := range r.targets() {
		if !t.met {
			out = append(out, t.name)
		}
	}
	return out
}

func (r *result) markdown() string {
	var b strings.Builder
	row := func(measure, result, target, met string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", measure, result, target, met)
	}
	o := r.opt
	fmt.Fprintf(&b, "Soak: %s at %d connections, %s browsers (%s).\n\n", o.duration, o.conns, commas(int64(o.browsers)), time.Now().Format("2006-01-02 15:04"))
	b.WriteString("| measure | result | target | met |\n|---|---|---|---|\n")
	row("duration", fmt.Sprintf("%s of load; baseline after %s", r.loadTook.Round(100*time.Millisecond), o.warmup), "≥ "+o.duration.String(), r.met("duration"))
	row("connections", fmt.Sprint(o.conns), "", "")
	row("browsers", fmt.Sprintf("%s created in %s (%d at a time)", commas(int64(r.browsersMade)), r.setupTook.Round(100*time.Millisecond), o.setupConns),
		commas(int64(o.browsers)), r.met("browsers"))
	row("requests", fmt.Sprintf("%s (%.1f%% home page)", commas(r.requests), 100*float64(r.home)/float64(max(r.requests, 1))), "", "")
	row("req/s", commas(int64(float64(r.requests)/r.loadTook.Seconds())), "", "")
	row("latency p50 / p99 / max", fmt.Sprintf("%s / %s / %s", ms(r.latency.quantile(0.5)), ms(r.latency.quantile(0.99)), ms(r.latency.quantile(1))), "", "")
	row("service time p50 / p99 by route, during the load (bucket bounds)", r.serviceLatency(), "", "")
	memcached := fmt.Sprintf("memcached %.2f, ", r.cpuMemcached)
	if len(o.memcached) > 0 {
		memcached = "" // a given node's process is not ours to read; in everything else if it runs here
	}
	row("CPU during the load (cores, of "+fmt.Sprint(runtime.NumCPU())+")", fmt.Sprintf("machine %.2f: service %.2f, %sload generator %.2f, everything else %.2f (MariaDB, other work)",
		r.cpuMachine, r.cpuService, memcached, r.cpuSoak, r.cpuOthers), "", "")
	if waits := r.afterLoad.dbWaits - r.start.dbWaits; r.afterLoad.dbMaxOpen > 0 {
		row(fmt.Sprintf("MySQL pool (%.0f connections) during the load", r.afterLoad.dbMaxOpen), fmt.Sprintf("%s waits for a connection, %.0f ms each on average",
			commas(int64(waits)), 1000*(r.afterLoad.dbWaitSeconds-r.start.dbWaitSeconds)/max(waits, 1)), "", "")
	}
	row("errors", r.byPhase(r.errors, r.setupErrors, r.loadErrors)+r.errorKinds(), "0", r.met("errors"))
	row("pages saying the visit count is unavailable", r.byPhase(r.unavailable, r.setupUnavailable, r.loadUnavailable), "0", r.met("unavailable"))
	wrong := commas(int64(r.wrongCounts))
	if r.wrongCounts > 0 {
		wrong += fmt.Sprintf(" (%d of them higher by no more than their failed or unavailable pages)", r.wrongExplained)
	}
	if r.unverified > 0 {
		wrong += fmt.Sprintf("; %d not verified (final read failed)", r.unverified)
	}
	row("browsers whose final count ≠ 2 + their counted home pages", wrong, "0", r.met("wrong counts"))
	row("home pages whose count was not the previous + 1", commas(r.outOfOrder), "0", r.met("out of order"))
	row("RSS at start / after warm-up / end", fmt.Sprintf("%.1f / %.1f / %.1f MiB", mib(r.start.rss), mib(r.warm.rss), mib(r.end.rss)), "", "")
	row("RSS growth after warm-up", fmt.Sprintf("%+.1f%%", r.rssGrowth()), "< 10%", r.met("RSS growth"))
	row("peak RSS", fmt.Sprintf("%.1f MiB (VmHWM; highest reading under load %.1f MiB)", mib(r.peakRSS), mib(r.sampledRSSMax)), "", "")
	row("goroutines after warm-up / min / max / end", fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", r.warm.goroutines, r.goroutineMin, r.goroutineMax, r.end.goroutines),
		fmt.Sprintf("end within ±%.0f of after warm-up", goroutineBand(r.warm.goroutines)), r.met("goroutines"))
	row("goroutines with no connection, before / after the load", fmt.Sprintf("%.0f / %.0f", r.idleBefore.goroutines, r.idleAfter.goroutines), "", "")
	row("memcached errors seen by the service: first visits / load / final reads", fmt.Sprintf("%s / %s / %s",
		storeErrorsBetween(r.beforeSetup, r.start), storeErrorsBetween(r.start, r.afterLoad), storeErrorsBetween(r.afterLoad, r.idleAfter)), "", "")
	row("memcached evictions", r.evictions, "", "")
	row("memcached connections (node not faulted)", r.mcConns, "", "")
	if f := r.flood; f != nil {
		row("flood of first visits from one address", fmt.Sprintf("%s over %s at %d connections: %s given a session, %s not answered 200",
			commas(f.requests), r.opt.flood, r.opt.floodConns, commas(f.stored), commas(f.failed)), "", "")
		row("office: browsers behind one address during the flood", fmt.Sprintf("%d of %d got a session, %d then the count 2 %v",
			f.officeMade, r.opt.office, f.officeCounted, f.officeProblems), fmt.Sprint(r.opt.office), r.met("office"))
	}
	row("returning browsers given a new session", commas(r.newSession), "0", r.met("returning browsers keep their sessions"))
	for _, f := range r.faultLog {
		row("fault", f, "", "")
	}
	if len(r.examples) > 0 || len(r.wrongExamples) > 0 || len(r.loadNon2xx) > 0 {
		b.WriteString("\nDetails:\n\n")
		if len(r.loadNon2xx) > 0 {
			fmt.Fprintf(&b, "- answers not 2xx during the load, by the service's own count: %s\n", formatCounts(r.loadNon2xx))
		}
		for _, e := range r.examples {
			fmt.Fprintf(&b, "- %s\n", e)
		}
		for _, e := range r.wrongExamples {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	if r.newSession > 0 {
		fmt.Fprintf(&b, "- returning browsers given a new sessionid: %d\n", r.newSession)
	}
	return b.String()
}

func (r *result) errorKinds() string {
	if len(r.kinds) == 0 {
		return ""
	}
	keys := make([]string, 0, len(r.kinds))
	for k := range r.kinds {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r.kinds[keys[i]] > r.kinds[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", k, commas(r.kinds[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// byPhase writes a total and, when it is not 0, its parts.
func (r *result) byPhase(total, setup, load int64) string {
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%s (first visits %s, load %s, final reads %s)", commas(total), commas(setup), commas(load), commas(total-setup-load))
}

// storeErrorsBetween is the memcached errors the service counted between
// two readings, by operation.
func storeErrorsBetween(from, to sample) string {
	diff := map[string]float64{}
	var total float64
	for op, n := range to.storeErrors {
		diff[op] = n - from.storeErrors[op]
		total += diff[op]
	}
	if total == 0 {
		return "0"
	}
	return fmt.Sprintf("%.0f (%s)", total, formatCounts(diff))
}

func formatCounts(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func (r *result) serviceLatency() string {
	var parts []string
	for _, route := range r.end.routes() {
		n, p50, p99 := routeLatency(r.start, r.end, route)
		if n < 100 || route == "/metrics" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s / %s", route, p50, p99))
	}
	return strings.Join(parts, "; ")
}
