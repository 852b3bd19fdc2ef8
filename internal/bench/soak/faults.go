package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// injectFaults is -faults: a third into the load it kills memcached node 1
// (SIGKILL: no goodbye to the service's connections) and starts it again,
// empty, on the same port; two thirds in, with three or more nodes, it
// kills the last node for good. After each it records how many home pages
// said the count was unavailable until counting resumed: the first counted
// home page after the fault whose count the service read from memcached.
func injectFaults(ctx context.Context, opt options, ps *testkit.Procs, nodes []*process, t *tally, res *result, say func(string, ...any)) {
	start := time.Now()
	at := func(frac float64) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(start.Add(time.Duration(frac * float64(opt.duration))))):
			return true
		}
	}
	note := func(format string, a ...any) {
		line := fmt.Sprintf("%s: ", clock(time.Since(start))) + fmt.Sprintf(format, a...)
		say("fault %s", line)
		res.faultLog = append(res.faultLog, line)
	}

	if !at(1.0 / 3) {
		return
	}
	restarted := nodes[0]
	_ = restarted.Signal(syscall.SIGKILL)
	<-restarted.Done()
	down := time.Now()
	p, err := startMemcached(ctx, ps, 0, restarted.addr, opt.memcachedMB)
	if err != nil {
		note("node 1 could not be started again: %v", err)
		return
	}
	back := time.Now()
	nodes[0] = p
	note("node 1 killed and started again, empty, on %s (down %s)", p.addr, back.Sub(down).Round(time.Millisecond))
	note("node 1: %s", resumed(ctx, t, back))

	if len(nodes) < 3 || !at(2.0/3) {
		return
	}
	last := nodes[len(nodes)-1]
	_ = last.Signal(syscall.SIGKILL)
	<-last.Done()
	note("node %d on %s killed for good", len(nodes), last.addr)
	note("node %d: %s", len(nodes), resumed(ctx, t, time.Now()))
}

// resumed waits until home pages are counted again after since (the
// unavailable tally stops growing for a second) and says how long that took
// and how many pages said the count was unavailable meanwhile.
func resumed(ctx context.Context, t *tally, since time.Time) string {
	before := t.unavailable.Load()
	last, lastAt := before, since
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Sprintf("load ended; %d home pages without a count since", t.unavailable.Load()-before)
		case now := <-tick.C:
			if u := t.unavailable.Load(); u != last {
				last, lastAt = u, now
				continue
			}
			if now.Sub(lastAt) >= time.Second {
				return fmt.Sprintf("counting resumed %s after it (last page without a count); %d home pages without a count in between",
					lastAt.Sub(since).Round(time.Millisecond), last-before)
			}
		}
	}
}
