package main

import (
	"context"
	"strings"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// serviceCounters are the service's counters that a run's report uses.
type serviceCounters struct {
	requests   float64            // requests to the run's route
	non2xx     float64            // of which not 2xx
	sessionOps map[string]float64 // memcached operations by kind
	counts     map[string]float64 // counts-cache lookups by result
}

func readCounters(base, route string) (serviceCounters, error) {
	m, err := testkit.Scrape(context.Background(), nil, base+"/metrics")
	if err != nil {
		return serviceCounters{}, err
	}
	const reqs = "locallibrary_http_request_duration_seconds_count"
	return serviceCounters{
		requests: m.Sum(reqs, func(l map[string]string) bool { return l["route"] == route }),
		non2xx: m.Sum(reqs, func(l map[string]string) bool {
			return l["route"] == route && !strings.HasPrefix(l["status"], "2")
		}),
		sessionOps: m.By("locallibrary_session_store_duration_seconds_count", "op"),
		counts:     m.By("locallibrary_counts_cache_total", "result"),
	}, nil
}

func (c serviceCounters) minus(before serviceCounters) serviceCounters {
	d := serviceCounters{
		requests:   c.requests - before.requests,
		non2xx:     c.non2xx - before.non2xx,
		sessionOps: map[string]float64{},
		counts:     map[string]float64{},
	}
	for k, v := range c.sessionOps {
		d.sessionOps[k] = v - before.sessionOps[k]
	}
	for k, v := range c.counts {
		d.counts[k] = v - before.counts[k]
	}
	return d
}

func total(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}
