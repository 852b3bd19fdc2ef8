package main

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/locallibrary/locallibrary/internal/testkit"
)

// sample is one reading of the service's /metrics.
type sample struct {
	at          time.Time
	rss         float64 // process_resident_memory_bytes
	goroutines  float64 // go_goroutines
	storeErrors map[string]float64
	unavailable float64 // locallibrary_visit_count_unavailable_total
	// the MySQL pool (database/sql's stats): waits for a connection, the
	// time spent waiting, and the pool's size
	dbWaits, dbWaitSeconds, dbMaxOpen float64
	statuses                          map[string]float64 // requests by status, summed over routes and methods
	// buckets is the service's latency histogram by route: route → le → count.
	buckets map[string]map[string]float64
}

func (s sample) storeErrorsTotal() float64 {
	var n float64
	for _, v := range s.storeErrors {
		n += v
	}
	return n
}

// non2xx is how many answers were not 2xx, by status.
func (s sample) non2xx() map[string]float64 {
	out := map[string]float64{}
	for status, n := range s.statuses {
		if !strings.HasPrefix(status, "2") {
			out[status] = n
		}
	}
	return out
}

// metricsReader reads /metrics on a connection of its own, apart from the
// load's.
type metricsReader struct {
	client *fasthttp.HostClient
	url    string
}

func newMetricsReader(addr string) *metricsReader {
	return &metricsReader{
		client: &fasthttp.HostClient{Addr: addr, MaxConns: 1, MaxConnWaitTimeout: 10 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxIdemponentCallAttempts: 1},
		url: "http://" + addr + "/metrics",
	}
}

func (m *metricsReader) read() (sample, error) {
	status, body, err := m.client.GetTimeout(nil, m.url, 10*time.Second)
	if err != nil {
		return sample{}, fmt.Errorf("GET /metrics: %w", err)
	}
	if status != fasthttp.StatusOK {
		return sample{}, fmt.Errorf("GET /metrics: status %d", status)
	}
	return parseMetrics(body, time.Now())
}

// parseMetrics picks the few series the soak watches out of Prometheus text.
func parseMetrics(body []byte, at time.Time) (sample, error) {
	m, err := testkit.ParseMetrics(body)
	if err != nil {
		return sample{}, err
	}
	if !m.Has("process_resident_memory_bytes") || !m.Has("go_goroutines") {
		return sample{}, fmt.Errorf("/metrics has no process_resident_memory_bytes or go_goroutines")
	}
	s := sample{
		at:            at,
		rss:           m.Sum("process_resident_memory_bytes", nil),
		goroutines:    m.Sum("go_goroutines", nil),
		unavailable:   m.Sum("locallibrary_visit_count_unavailable_total", nil),
		dbWaits:       m.Sum("go_sql_wait_count_total", nil),
		dbWaitSeconds: m.Sum("go_sql_wait_duration_seconds_total", nil),
		dbMaxOpen:     m.Sum("go_sql_max_open_connections", nil),
		storeErrors:   m.By("locallibrary_session_store_errors_total", "op"),
		statuses:      m.By("locallibrary_http_request_duration_seconds_count", "status"),
		buckets:       map[string]map[string]float64{},
	}
	for _, x := range m {
		if x.Name != "locallibrary_http_request_duration_seconds_bucket" {
			continue
		}
		route := x.Labels["route"]
		if s.buckets[route] == nil {
			s.buckets[route] = map[string]float64{}
		}
		s.buckets[route][x.Labels["le"]] += x.Value
	}
	return s, nil
}

// settle reads the service's goroutines once connections have closed:
// after at least `least` (fasthttp's idle workers leave 10–20s after their connection
// closes), once three readings a second apart agree, or after `most`.
func (m *metricsReader) settle(ctx context.Context, least, most time.Duration) (sample, error) {
	begun := time.Now()
	deadline := begun.Add(most)
	var last sample
	same := 0
	for {
		s, err := m.read()
		if err != nil {
			return s, err
		}
		if s.goroutines == last.goroutines {
			same++
		} else {
			same = 0
		}
		last = s
		if (same >= 2 && time.Since(begun) >= least) || time.Now().After(deadline) {
			return last, nil
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// histogram counts latencies in buckets about 5% wide, per worker, so no
// worker waits on another to record one.
type histogram [400]int64

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(len(histogram{})-1, 1+int(math.Log(us)*20))
}

func (h *histogram) add(d time.Duration) { h[bucketOf(d)]++ }

func (h *histogram) merge(o *histogram) {
	for i, n := range o {
		h[i] += n
	}
}

// quantile is the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i, n := range h {
		seen += n
		if seen >= want {
			return time.Duration(math.Exp(float64(i)/20) * float64(time.Microsecond))
		}
	}
	return 0
}

// routeLatency is the service's own latency for a route between two
// readings: its request count and the upper bounds of the buckets holding
// the median and the 99th percentile ("+Inf" past the last bucket).
func routeLatency(from, to sample, route string) (count float64, p50, p99 string) {
	type bucket struct {
		le    float64
		name  string
		count float64
	}
	var bs []bucket
	for name, n := range to.buckets[route] {
		le, err := strconv.ParseFloat(name, 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, name, n - from.buckets[route][name]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return 0, "", ""
	}
	count = bs[len(bs)-1].count // le="+Inf" holds every request
	find := func(q float64) string {
		for _, b := range bs {
			if b.count >= q*count {
				if math.IsInf(b.le, 1) {
					return "> " + ms(time.Duration(bs[len(bs)-2].le*float64(time.Second)))
				}
				return "≤ " + ms(time.Duration(b.le*float64(time.Second)))
			}
		}
		return ""
	}
	return count, find(0.5), find(0.99)
}

// routes is the routes seen in a reading, busiest first.
func (s sample) routes() []string {
	var out []string
	for r := range s.buckets {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return s.buckets[out[i]]["+Inf"] > s.buckets[out[j]]["+Inf"] })
	return out
}
