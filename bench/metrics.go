package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// series is one Prometheus sample: its metric name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads a service's /metrics (Prometheus text format).
func scrape(base string) ([]series, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2000))
		return nil, fmt.Errorf("GET /metrics: status %d: %s", resp.StatusCode, body)
	}
	var out []series
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s, ok := parseSample(line)
		if ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample parses `name{a="x",b="y"} value [timestamp]`. Label values
// here never hold quotes or commas, which keeps this simple.
func parseSample(line string) (series, bool) {
	s := series{labels: map[string]string{}}
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return s, false
		}
		s.name = line[:i]
		for _, pair := range strings.Split(line[i+1:j], ",") {
			k, v, ok := strings.Cut(pair, "=")
			if ok {
				s.labels[strings.TrimSpace(k)] = strings.Trim(v, `"`)
			}
		}
		rest = strings.TrimSpace(line[j+1:])
	} else {
		name, r, ok := strings.Cut(line, " ")
		if !ok {
			return s, false
		}
		s.name, rest = name, r
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, false
	}
	s.value = v
	return s, true
}

// sum adds the samples of metric name whose labels pass keep (nil: all).
func sum(ss []series, name string, keep func(map[string]string) bool) float64 {
	var total float64
	for _, s := range ss {
		if s.name == name && (keep == nil || keep(s.labels)) {
			total += s.value
		}
	}
	return total
}

// serviceCounters are the service's counters that a run's report uses.
type serviceCounters struct {
	requests   float64            // requests to the run's route
	non2xx     float64            // of which not 2xx
	sessionOps map[string]float64 // memcached operations by kind
	counts     map[string]float64 // counts-cache lookups by result
}

func readCounters(base, route string) (serviceCounters, error) {
	ss, err := scrape(base)
	if err != nil {
		return serviceCounters{}, err
	}
	c := serviceCounters{sessionOps: map[string]float64{}, counts: map[string]float64{}}
	const reqs = "locallibrary_http_request_duration_seconds_count"
	c.requests = sum(ss, reqs, func(l map[string]string) bool { return l["route"] == route })
	c.non2xx = sum(ss, reqs, func(l map[string]string) bool {
		return l["route"] == route && !strings.HasPrefix(l["status"], "2")
	})
	for _, s := range ss {
		switch s.name {
		case "locallibrary_session_store_duration_seconds_count":
			c.sessionOps[s.labels["op"]] += s.value
		case "locallibrary_counts_cache_total":
			c.counts[s.labels["result"]] += s.value
		}
	}
	return c, nil
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
