package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestVisitCount(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      uint64
		wantKnown bool
		wantErr   bool
	}{
		{"one", `<p>You have visited this page 1 time.</p>`, 1, true, false},
		{"many", `<div><p>You have visited this page 12345 times.</p>`, 12345, true, false},
		{"unavailable", `<p class="visits-unavailable">Your visit count is unavailable right now.</p>`, 0, false, false},
		{"another page", `<h1>Book List</h1>`, 0, false, true},
		{"no number", `You have visited this page many times.`, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, known, err := visitCount([]byte(tt.body))
			if (err != nil) != tt.wantErr || got != tt.want || known != tt.wantKnown {
				t.Errorf("visitCount = %d, %v, %v; want %d, %v, error %v", got, known, err, tt.want, tt.wantKnown, tt.wantErr)
			}
		})
	}
}

const metricsText = `# HELP go_goroutines Number of goroutines that currently exist.
go_goroutines 284
process_resident_memory_bytes 6.7e+07
locallibrary_session_store_errors_total{op="get"} 2
locallibrary_session_store_errors_total{op="get_and_increment"} 5
locallibrary_visit_count_unavailable_total 5
locallibrary_http_request_duration_seconds_bucket{method="GET",route="/catalog/",status="200",le="0.001"} 90
locallibrary_http_request_duration_seconds_bucket{method="GET",route="/catalog/",status="200",le="0.1"} 99
locallibrary_http_request_duration_seconds_bucket{method="GET",route="/catalog/",status="200",le="2.5"} 100
locallibrary_http_request_duration_seconds_bucket{method="GET",route="/catalog/",status="200",le="+Inf"} 100
locallibrary_http_request_duration_seconds_count{method="GET",route="/catalog/",status="200"} 100
locallibrary_http_request_duration_seconds_count{method="GET",route="/catalog/book/:id",status="503"} 3
`

func TestParseMetrics(t *testing.T) {
	s, err := parseMetrics([]byte(metricsText), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.goroutines != 284 || s.rss != 6.7e7 || s.unavailable != 5 || s.storeErrorsTotal() != 7 {
		t.Errorf("goroutines %v, rss %v, unavailable %v, store errors %v", s.goroutines, s.rss, s.unavailable, s.storeErrorsTotal())
	}
	if got := s.non2xx(); len(got) != 1 || got["503"] != 3 {
		t.Errorf("non2xx = %v, want 503: 3", got)
	}
	empty := sample{}
	n, p50, p99 := routeLatency(empty, s, "/catalog/")
	if n != 100 || p50 != "≤ 1.0 ms" || p99 != "≤ 100 ms" {
		t.Errorf("routeLatency = %v, %q, %q", n, p50, p99)
	}
	if _, err := parseMetrics([]byte("up 1\n"), time.Now()); err == nil {
		t.Error("metrics without RSS or goroutines: no error")
	}
}

func TestBrowserKeepsCookies(t *testing.T) {
	b := &browser{}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	set := func(raw ...string) bool {
		resp.Reset()
		for _, r := range raw {
			resp.Header.Add("Set-Cookie", r)
		}
		return b.keep(resp)
	}
	set("cookietest=1; Path=/catalog/; HttpOnly")
	if changed := set("sessionid=abc; Path=/; HttpOnly", "csrftoken=t1; Path=/"); changed {
		t.Error("a first sessionid reported as a change")
	}
	if b.cookie != "cookietest=1; sessionid=abc; csrftoken=t1" {
		t.Errorf("Cookie header %q", b.cookie)
	}
	if !set("sessionid=def; Path=/") {
		t.Error("a new sessionid not reported")
	}
	set("cookietest=1; Max-Age=-1")
	set("csrftoken=t1; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
	if b.cookie != "sessionid=def" {
		t.Errorf("Cookie header after a change and two deletions %q", b.cookie)
	}
}

func TestOptions(t *testing.T) {
	env := func(k string) string { return map[string]string{dsnEnv: "u@tcp(127.0.0.1:3306)/x"}[k] }
	o, err := parseOptions([]string{"-memcached", "127.0.0.1:1,127.0.0.1:2"}, env, io.Discard)
	if err != nil || o.dsn != "u@tcp(127.0.0.1:3306)/x" || len(o.memcached) != 2 || o.memcachedNodes != 2 {
		t.Errorf("options %+v, %v", o, err)
	}
	_, err = parseOptions([]string{"-memcached", "127.0.0.1:1", "-faults"}, func(string) string { return "" }, io.Discard)
	for _, want := range []string{"-mysql", dsnEnv, "-faults"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
